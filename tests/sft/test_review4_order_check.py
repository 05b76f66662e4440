"""An SFT checkpoint records the MD5 of its epoch's row order: a torch whose `randperm` draws another order
(torch does not promise the same stream across versions) is refused at resume instead of silently skipping and
repeating rows of the epoch."""

from __future__ import annotations

import pytest
import torch

from steel.config import ConfigError
from steel.sft.data import SftData


def rows(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.arange(n * 4).reshape(n, 4)
    return ids, ids.clone()


def test_resume_with_the_same_order_goes_on_exactly():
    a = SftData(*rows(), micro_batch=3, seed=5)
    for _ in range(5):  # into the second epoch
        a.next_batch()
    b = SftData(*rows(), micro_batch=3, seed=5)
    b.load_state_dict(a.state_dict())
    for _ in range(4):
        assert torch.equal(a.next_batch()["input_ids"], b.next_batch()["input_ids"])


def test_resume_under_another_row_order_is_refused(monkeypatch):
    a = SftData(*rows(), micro_batch=3, seed=5)
    for _ in range(5):
        a.next_batch()
    state = a.state_dict()
    assert state["epoch"] == 1 and state["torch"] == torch.__version__

    # Another torch: the same seed draws the reverse of this torch's permutation.
    perm = SftData._perm
    monkeypatch.setattr(SftData, "_perm", lambda self, epoch: perm(self, epoch).flip(0))
    b = SftData(*rows(), micro_batch=3, seed=5)
    with pytest.raises(ConfigError, match=r"draws another row order for epoch 2 than torch .*resume with that torch"):
        b.load_state_dict(state)
