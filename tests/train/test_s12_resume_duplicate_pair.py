"""A run that drew from two data dirs prepared from the same input files before Steel refused such a pair
(ababa4c) resumes through `steel train` with a WARNING, exactly: the loader's constructor refused the
resume, and leaving one dir out was refused too (a registered chunk missing), so such a run could not go on.
A fresh start with the pair is still refused."""

from __future__ import annotations

import json
import shutil

from train_fixtures import losses, make_data_dir, tiny_config

from steel.cli import main as steel
from steel.data import loader


def _as_prepared_from(d, name):
    """`d`'s manifest as `steel data prepare` records its inputs: one input file `name` under one root."""
    m = json.loads((d / "manifest.json").read_text())
    m["sources"]["web"]["files"] = [name]
    m["inputs"] = {"digest": "d" * 64, "root": "/data/raw", "files": {"web": [[name, 1234]]}}
    (d / "manifest.json").write_text(json.dumps(m))
    return d


def test_a_run_that_drew_from_a_pair_resumes_with_a_warning(tmp_path, monkeypatch, capsys):
    a = _as_prepared_from(make_data_dir(tmp_path / "A", [1500], seed=1), "a.jsonl")
    a2 = _as_prepared_from(make_data_dir(tmp_path / "A2", [1200], seed=2, prefix="other"), "a.jsonl")
    cfg = tiny_config(tmp_path, [a, a2], max_steps=8)
    assert steel(["train", str(cfg)]) == 2  # a fresh start with the pair is refused
    assert "same input files" in capsys.readouterr().err

    with monkeypatch.context() as m:  # the run as an earlier Steel started it
        m.setattr(loader, "check_distinct_inputs", lambda *a, **k: None)
        assert steel(["train", str(cfg)]) == 0
    full = losses(tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-8")  # resume from step 4
    capsys.readouterr()
    assert steel(["train", str(cfg)]) == 0
    assert "same input files" in capsys.readouterr().err
    assert losses(tmp_path / "run") == full
