"""A `data.seed` whose epoch-order generator seed does not fit 64 bits is refused when the config is read."""

from __future__ import annotations

import pytest
import torch

from steel.config import ConfigError, from_dict
from steel.sft import data as D

CFG = {"datasets": [{"name": "chat", "path": ["chat.json"]}]}
HI = (2**64 - 1 - 2**32) // 1_000_003  # the largest seed whose generator seed (seed * 1_000_003 + epoch) fits
LO = -(2**63 // 1_000_003)


@pytest.mark.parametrize("seed", [HI + 1, 20261207153000, LO - 1])
def test_a_seed_too_large_for_the_epoch_order_is_refused(seed):
    # It was accepted, and `steel sft` failed with a traceback (torch: "Overflow when unpacking long")
    # after reading and tokenizing the whole mixture.
    with pytest.raises(ConfigError, match=rf"data\.seed: must be between {LO} and {HI}, got {seed}"):
        from_dict(D.SftDataConfig, {**CFG, "seed": seed})


@pytest.mark.parametrize("seed", [HI, LO, 0])
def test_the_extreme_seeds_order_epochs(seed):
    from_dict(D.SftDataConfig, {**CFG, "seed": seed})
    rows = torch.arange(5).view(5, 1)
    data = D.SftData(rows, rows, micro_batch=5, seed=seed)
    for _ in range(3):  # epochs 0, 1, 2: each a permutation of the rows
        assert sorted(data.next_batch()["input_ids"].flatten().tolist()) == [0, 1, 2, 3, 4]
