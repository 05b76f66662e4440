"""W&B logging, offline (WANDB_MODE=offline writes the run under RUN_DIR/wandb; nothing leaves the machine)."""

from __future__ import annotations

import re

from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel

LOG = {"every": 1, "wandb": True, "tensorboard": False, "progress": False}


def test_resume_continues_the_same_wandb_run(tmp_path, monkeypatch):
    # wandb is a dev dependency (pyproject [dev], installed by scripts/setup.sh): no skip without it.
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    assert steel(["train", str(tiny_config(tmp_path, [data], max_steps=4, log=LOG))]) == 0
    run = tmp_path / "run"
    run_id = (run / "wandb_run_id").read_text().strip()
    assert steel(["train", str(tiny_config(tmp_path, [data], max_steps=6, log=LOG))]) == 0  # resumes at step 4
    offline = sorted(p.name for p in (run / "wandb").glob("offline-run-*"))
    assert len(offline) == 2  # one directory per process that logged...
    # offline-run-{YYYYMMDD_HHMMSS}-{run id}[-{n}]: wandb adds -1 when both runs start in the same second
    ids = {re.fullmatch(r"offline-run-\d{8}_\d{6}-([^-]+)(?:-\d+)?", name).group(1) for name in offline}
    assert ids == {run_id}  # ...both for the same W&B run (was 2 runs)
