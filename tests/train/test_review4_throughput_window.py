"""`tokens_per_s` and `mfu` measure training steps, not checkpoint saves: the window after each save counted
the save's time (the log is written before the save), so throughput dipped there."""

from __future__ import annotations

import json

from train_fixtures import FakeTime, make_data_dir, tiny_config

import steel.train.trainer as trainer_mod
from steel.cli import main as steel


def test_saves_are_not_counted_in_tokens_per_s(tmp_path, monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr(trainer_mod, "time", clock)
    step, save = trainer_mod.Trainer.train_step, trainer_mod.Trainer.save

    def timed_step(self):
        clock.now += 1.0
        return step(self)

    def timed_save(self):
        clock.now += 1000.0
        return save(self)

    monkeypatch.setattr(trainer_mod.Trainer, "train_step", timed_step)
    monkeypatch.setattr(trainer_mod.Trainer, "save", timed_save)
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=5, checkpoint={"every": 2, "keep": 5})
    assert steel(["train", str(cfg)]) == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    per_step = 4 * 2 * 16  # micro_batch x grad_accum x seq_len positions, one fake second each
    assert [r["tokens_per_s"] for r in rows] == [per_step] * 5  # steps 3 and 5 follow a save
