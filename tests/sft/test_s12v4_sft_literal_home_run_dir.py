"""`steel sft` too: a run that Steel before f1b3f53 wrote into ./~/r (a `~` in run_dir taken literally) is not
started again from step 0 in $HOME/r by the same config; the start is refused, naming the old run."""

from __future__ import annotations

import pytest
from sft_runs import write_sft_run

from steel.config import ConfigError
from steel.sft.train import fit, setup


def test_sft_run_left_in_a_literal_tilde_dir_is_not_restarted_in_home(tmp_path, monkeypatch, tiny_tokenizer_dir):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=1)
    assert fit(setup(str(config), [f"run_dir={tmp_path / '~' / 'r'}"])) == 0  # where the old code put `~/r`
    with pytest.raises(ConfigError, match=r"^run_dir: .*home/r holds no checkpoint, but \./~/r does"):
        fit(setup(str(config), ["run_dir=~/r", "max_steps=2"]))
    assert not (home / "r").exists()
