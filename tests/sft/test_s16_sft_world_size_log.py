"""`steel sft` resumed on another number of processes says so, as pretraining does ('data: world size 2 -> 1, the
global order is re-split'): SFT re-split its row order silently (found by helper K, session 16). The re-split
itself is covered by test_sft's world-size resume; this checks the line, once (rank 0), and none without a change."""

from __future__ import annotations

import logging

import torch

from steel.sft.data import SftData


def _rows(n: int = 12, seq: int = 8) -> torch.Tensor:
    return torch.arange(n * seq, dtype=torch.int64).reshape(n, seq)


def test_a_resume_on_another_world_size_is_logged_once(caplog):
    rows = _rows()
    a = SftData(rows, rows.clone(), micro_batch=2, seed=3, rank=0, world_size=2)
    a.next_batch()
    state = a.state_dict()
    caplog.set_level(logging.INFO, logger="steel")
    SftData(rows, rows.clone(), micro_batch=4, seed=3, rank=0, world_size=1).load_state_dict(state)
    lines = [r.getMessage() for r in caplog.records if "world size" in r.getMessage()]
    assert lines == ["sft data: world size 2 -> 1, the global row order is re-split"]
    caplog.clear()
    SftData(rows, rows.clone(), micro_batch=4, seed=3, rank=1, world_size=3).load_state_dict(state)  # rank 1: quiet
    SftData(rows, rows.clone(), micro_batch=2, seed=3, rank=0, world_size=2).load_state_dict(state)  # no change
    assert not [r for r in caplog.records if "world size" in r.getMessage()]
