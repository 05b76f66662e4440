"""A run that Steel before f1b3f53 wrote into ./~/runs/a (a `~` in run_dir was taken literally) is not silently
started again from step 0 in $HOME/runs/a by the same config: the start is refused, naming the old run and how to
move it; once moved, it resumes where it stopped."""

from __future__ import annotations

import json
import shutil

import pytest
from train_fixtures import make_data_dir, tiny_config

from steel.config import ConfigError
from steel.train.trainer import fit, setup


def test_a_run_left_in_a_literal_tilde_dir_is_not_restarted_in_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    # the run as the old code left it: in a directory named `~` in the working directory
    assert fit(setup(str(tiny_config(tmp_path, [data], max_steps=2, run_dir=str(tmp_path / "~" / "runs" / "a"))))) == 0
    cfg = tiny_config(tmp_path, [data], max_steps=4, run_dir="~/runs/a")
    with pytest.raises(ConfigError, match=r"^run_dir: .*home/runs/a holds no checkpoint, but \./~/runs/a does") as e:
        fit(setup(str(cfg)))
    assert f"mv ./~/runs/a {home / 'runs' / 'a'}" in str(e.value)
    assert not (home / "runs" / "a").exists()  # nothing written there: the run can be moved as it is
    shutil.move(str(tmp_path / "~" / "runs" / "a"), str(home / "runs" / "a"))
    assert fit(setup(str(cfg))) == 0
    steps = [json.loads(x)["step"] for x in (home / "runs" / "a" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # resumed at step 3, not started again
    # a new run under the home directory with nothing at ./~/runs/b starts
    assert fit(setup(str(tiny_config(tmp_path, [data], max_steps=1, run_dir="~/runs/b")))) == 0
