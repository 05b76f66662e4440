"""Pretraining's `tokens` is unchanged by SFT's count of computed positions: every position is a target."""

from __future__ import annotations

import json

from train_fixtures import losses, make_data_dir, tiny_config

from steel.cli import main as steel


def test_pretraining_tokens_are_every_position(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=3)  # micro_batch 4 x grad_accum 2 x seq_len 16
    assert steel(["train", str(cfg)]) == 0
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["tokens"] for r in records] == [s * 4 * 2 * 16 for s in (1, 2, 3)]
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-3" / "train_state.json").read_text())
    assert state["tokens"] == state["targets"] == 3 * 4 * 2 * 16
    assert len(losses(tmp_path / "run")) == 3
