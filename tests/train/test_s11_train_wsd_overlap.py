"""wsd's decay (its last `decay_steps` steps) beginning before the warmup ends is warned about: the learning rate
never held at optim.lr and fell in one step from the warmup's peak into the decay line, silently (warmup 8 and
decay 5 of 10 steps: 0.01 at step 8, 0.002 at step 9; a decay longer than the run started below optim.lr)."""

from __future__ import annotations

import logging

import pytest
from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel
from steel.train.config import OptimSection
from steel.train.optim import lr_at
from steel.train.trainer import warn_warmup_covers_run


def wsd_warnings(run_dir) -> list[str]:
    return [x for x in (run_dir / "train.log").read_text().splitlines() if "WARNING optim.schedule wsd" in x]


def test_wsd_decay_overlapping_the_warmup_is_warned(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=10, checkpoint={"every": 10, "keep": 1},
                      optim={"schedule": "wsd", "warmup_steps": 8, "decay_steps": 5, "min_lr": 0.0})  # lr 1e-2
    assert steel(["train", str(cfg)]) == 0
    # the schedule itself (steel.train.optim.lr_at, README): warmup 0.01 (s + 1) / 8 for s < 8, then the last 5 steps
    # (from s = 5) decay linearly to 0: 0.01 (1 - (s - 4) / 5) -> s = 8: 0.002, s = 9: 0
    assert [lr_at(s, OptimSection(lr=0.01, min_lr=0.0, schedule="wsd", warmup_steps=8, decay_steps=5), 10)
            for s in (7, 8)] == [0.01, pytest.approx(0.002, abs=1e-15)]
    got = wsd_warnings(tmp_path / "run")
    assert len(got) == 1, got
    assert got[0].endswith("optim.schedule wsd: warmup_steps 8 + decay_steps 5 > max_steps 10: the decay begins "
                           "before the warmup ends and the learning rate never holds at optim.lr 0.01 (it peaks at "
                           "0.01 after the warmup, then falls to 0.002 in one step); lower optim.decay_steps or "
                           "optim.warmup_steps"), got[0]


def test_wsd_decay_longer_than_the_run_is_warned_and_a_fitting_one_is_not(caplog):
    with caplog.at_level(logging.WARNING, logger="steel"):
        # no warmup, decay 20 of 10 steps: s = 0 is 1 - (0 + 10 + 1) / 20 = 0.45 of optim.lr
        warn_warmup_covers_run(OptimSection(lr=1.0, min_lr=0.0, schedule="wsd", warmup_steps=0, decay_steps=20), 10)
        # a 10% default decay right after the warmup (90 + 10 of 100), a cosine with the same numbers: no overlap
        warn_warmup_covers_run(OptimSection(lr=1.0, min_lr=0.0, schedule="wsd", warmup_steps=90), 100)
        warn_warmup_covers_run(OptimSection(lr=1.0, min_lr=0.0, schedule="cosine", warmup_steps=8, decay_steps=5), 10)
    got = [r.getMessage() for r in caplog.records]
    assert got == ["optim.schedule wsd: warmup_steps 0 + decay_steps 20 > max_steps 10: the decay is longer than the "
                   "run and the learning rate never holds at optim.lr 1 (it starts at 0.45); lower "
                   "optim.decay_steps or optim.warmup_steps"], got
