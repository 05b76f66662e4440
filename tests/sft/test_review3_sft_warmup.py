"""`steel sft` warns, as `steel train` does, when `optim.warmup_steps >= max_steps` (SFT's default warmup is
30 steps: a short SFT run never reached its optim.lr)."""

from __future__ import annotations

from sft_runs import write_sft_run

from steel.cli import main as steel


def test_sft_warns_when_the_warmup_lasts_the_run(tmp_path, tiny_tokenizer_dir):
    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=2, extra="optim: {lr: 1.0e-3, warmup_steps: 4}\n")
    assert steel(["sft", str(config)]) == 0
    got = [x for x in (tmp_path / "run" / "train.log").read_text().splitlines() if "WARNING optim.warmup_steps" in x]
    assert len(got) == 1 and got[0].endswith(
        "optim.warmup_steps 4 >= max_steps 2: the learning rate warms up for the whole run and peaks at 0.0005 at the "
        "last step (optim.lr 0.001, 50.0% of it), with no decay; lower optim.warmup_steps for a full schedule"), got
