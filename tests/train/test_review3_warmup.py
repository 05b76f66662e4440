"""`optim.warmup_steps >= max_steps` is warned about: the LR never reaches its peak (a smoke run of the 1B
config with `--set max_steps=10` trained at 10/2000 of optim.lr) and never decays. Not an error: smoke runs
shorten long configs on purpose."""

from __future__ import annotations

from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel


def warnings_in(run_dir) -> list[str]:
    return [x for x in (run_dir / "train.log").read_text().splitlines() if "WARNING optim.warmup_steps" in x]


def test_warmup_longer_than_the_run_is_warned(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2, optim={"warmup_steps": 8})  # lr 1e-2
    assert steel(["train", str(cfg)]) == 0
    got = warnings_in(tmp_path / "run")
    assert len(got) == 1, got
    assert got[0].endswith("optim.warmup_steps 8 >= max_steps 2: the learning rate warms up for the whole run and "
                           "peaks at 0.0025 at the last step (optim.lr 0.01, 25.0% of it), with no decay; lower "
                           "optim.warmup_steps for a full schedule"), got[0]


def test_warmup_shorter_than_the_run_is_not_warned(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=3, optim={"warmup_steps": 2})
    assert steel(["train", str(cfg)]) == 0
    assert warnings_in(tmp_path / "run") == []

