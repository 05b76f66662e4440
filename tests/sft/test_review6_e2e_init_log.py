"""`steel sft` with `init` = a run dir says in train.log which of its checkpoints gave the starting weights (it
said nothing: an SFT started while pretraining went on could not tell step-N from step-M afterwards)."""

from __future__ import annotations

from sft_runs import write_sft_run

from steel.cli import main as steel


def test_sft_train_log_names_the_init_checkpoint(tmp_path, tiny_tokenizer_dir):
    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=2, data_extra=", packing: false",
                           extra="optim: {lr: 1.0e-3, warmup_steps: 1}\ncheckpoint: {every: 1, keep: 2}\n")
    assert steel(["sft", str(config)]) == 0
    first = tmp_path / "run"
    assert sorted(p.name for p in (first / "checkpoints").iterdir()) == ["step-1", "step-2"]
    # the HF init dir of the first run is named as it is
    log1 = (first / "train.log").read_text(encoding="utf-8")
    assert [x for x in log1.splitlines() if " init: " in x][0].endswith(f"init: weights from {tmp_path / 'init'}")

    second = tmp_path / "run2"
    assert steel(["sft", str(config), "--set", f"init={first}", "--set", f"run_dir={second}",
                  "--set", "max_steps=1"]) == 0
    lines = [x for x in (second / "train.log").read_text(encoding="utf-8").splitlines() if " init: " in x]
    assert len(lines) == 1 and lines[0].endswith(f"init: weights from {first / 'checkpoints' / 'step-2'}"), lines
