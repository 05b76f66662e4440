"""`steel train` on an SFT run's run_dir is refused naming run_dir, before any other resume check: the data
seed check came first and told the user to `set data.seed: 0 again` (SFT's seed), which only led to a
second refusal ("data state: the run_dir holds an SFT run")."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sft"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

from sft_runs import write_sft_run  # noqa: E402
from tiny_models import tiny_tokenizer_dir  # noqa: E402, F401
from train_fixtures import make_data_dir, tiny_config  # noqa: E402

from steel.cli import main as steel  # noqa: E402


def test_train_refuses_an_sft_run_dir_naming_run_dir(tmp_path, tiny_tokenizer_dir, capsys):  # noqa: F811
    sft_config = write_sft_run(tmp_path / "sft", tiny_tokenizer_dir, max_steps=1, data_extra=", packing: false")
    assert steel(["sft", str(sft_config)]) == 0
    run = tmp_path / "sft" / "run"
    config_before = (run / "config.yaml").read_text(encoding="utf-8")
    capsys.readouterr()

    config = tiny_config(tmp_path, [make_data_dir(tmp_path / "data", [400])], run_dir=str(run))
    assert steel(["train", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"steel: error: run_dir: {run} holds an SFT run (its checkpoint {run / 'checkpoints' / 'step-1'}); "
                       "pretraining needs a run_dir of its own"), err
    assert (run / "config.yaml").read_text(encoding="utf-8") == config_before
