"""MFU counts every position the model computes, padding included; `tokens_per_s` the positions of conversations.

With `packing: false` each row is one conversation right-padded to seq_len, and the padded positions cost the same
FLOPs: MFU was computed from the conversation positions only, so it under-stated how busy the GPU was by the
padding share (a 300-token conversation per 2048-token row read ~15% of the real use). `computed_per_s` (padding
included) is what MFU uses now, and the log line shows it when it differs from tok/s.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from sft_runs import write_sft_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_fixtures import FakeTime  # noqa: E402

import steel.train.trainer as trainer_mod  # noqa: E402
from steel.cli import main as steel  # noqa: E402
from steel.train.metrics import MetricsLogger  # noqa: E402


def test_sft_mfu_counts_the_padded_positions(tmp_path, tiny_tokenizer_dir, monkeypatch):
    from steel.infer.load import load_model
    from steel.model.flops import flops_per_token

    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=3, data_extra=", packing: false")
    fpt = flops_per_token(load_model(tmp_path / "init").config, 64)["true"]
    clock = FakeTime()
    monkeypatch.setattr(trainer_mod, "time", clock)
    # A device whose peak is 256 steps' worth of positions a second: 128 positions/s (2 rows x 64) is MFU 0.5 exactly.
    monkeypatch.setattr(trainer_mod, "peak_flops", lambda device: (256 * fpt, "fake"))
    step = trainer_mod.Trainer.train_step

    def timed_step(self):
        clock.now += 1.0
        return step(self)

    monkeypatch.setattr(trainer_mod.Trainer, "train_step", timed_step)
    assert steel(["sft", str(config)]) == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    per_step = [b["tokens"] - a["tokens"] for a, b in zip([{"tokens": 0}, *rows], rows)]
    assert all(0 < n < 128 for n in per_step), per_step  # one short conversation per row, padded to 64
    assert [r["tokens_per_s"] for r in rows] == per_step  # conversation positions, one fake second per step
    assert [r["computed_per_s"] for r in rows] == [128.0] * 3  # micro_batch 2 x seq_len 64, padding included
    assert [r["mfu"] for r in rows] == [0.5] * 3
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert f"| {per_step[0]} tok/s (128 computed with padding) | MFU 50.0% |" in log


def test_log_line_without_padding_shows_one_rate(tmp_path, caplog):
    m = MetricsLogger(tmp_path, True, False, False, "steel", {})
    with caplog.at_level(logging.INFO, logger="steel"):
        m.log(1, {"loss": 1.0, "lr": 0.1, "grad_norm": 1.0, "tokens": 96, "tokens_per_s": 96.0,
                  "computed_per_s": 96.0, "mfu": None, "mem_gb": 0.0})
    (line,) = [r.getMessage() for r in caplog.records]
    assert "| 96 tok/s | MFU unknown |" in line
