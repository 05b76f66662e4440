"""`~` in an SFT config built in code (`fit(setup(path))`, as the tests and a notebook do) is the home directory as
in `steel sft`: only the CLI expanded `init`, `tokenizer` and `run_dir`, while the TrainConfig the Trainer reads
(`SftConfig.trainer_config`) expands its run_dir itself, so `run_dir: ~/run` split one run over two dirs:
checkpoints in $HOME/run, the lock, config.yaml, train.log, metrics and tokenizer in ./~/run (and a resume found
no checkpoint there); `init: ~/init` "did not exist"."""

from __future__ import annotations

import yaml
from sft_runs import write_sft_run

from steel.sft.train import fit, setup


def test_sft_api_run_with_home_paths_keeps_the_run_in_one_dir(tmp_path, monkeypatch, tiny_tokenizer_dir):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)  # where a literal `~` would be created
    config = write_sft_run(home, tiny_tokenizer_dir, max_steps=1)
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    cfg.update(init="~/init", tokenizer="~/init", run_dir="~/run")
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    c = setup(str(config))
    assert (c.init, c.tokenizer, c.run_dir) == (str(home / "init"), str(home / "init"), str(home / "run"))
    assert fit(c) == 0
    run = home / "run"
    for f in ("config.yaml", "train.log", "metrics.jsonl", "tokenizer", "checkpoints/step-1"):
        assert (run / f).exists(), f
    assert yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["run_dir"] == str(run)
    assert not (tmp_path / "~").exists()
    # a resume finds the run's checkpoint (it started again from step 0 in ./~/run before)
    assert fit(setup(str(config), ["max_steps=2"])) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-1", "step-2"]
    assert not (tmp_path / "~").exists()
