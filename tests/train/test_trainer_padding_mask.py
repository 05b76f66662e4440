"""Right-padded rows (`lengths`, SFT with `packing: false`) are masked for soft MoE v2/v3: their slots mix
every position of a row, and the trainer passed no attention_mask, so the pads entered the slots of the
row's tokens and the loss (and gradients) depended on what the padding held."""

from __future__ import annotations

import pytest
import torch

from steel.config import from_dict
from steel.model import build_model, load_model_config
from steel.train.config import TrainConfig
from steel.train.distributed import Dist
from steel.train.trainer import Trainer


class Rows:
    def __init__(self, batch):
        self.batch = batch

    def next_batch(self):
        return self.batch


def _model(ffn: str):
    cfg = load_model_config("tiny")
    cfg.ffn_type, cfg.initializer_range = ffn, 0.2  # a visible MoE branch
    torch.manual_seed(0)
    return build_model(cfg)


@pytest.mark.parametrize("ffn", ["soft_moe_v3", "soft_moe_v2"])
def test_padded_rows_train_on_what_each_row_gives_alone(ffn):
    model = _model(ffn)
    g = torch.Generator().manual_seed(1)
    rows = [torch.randint(5, 200, (n,), generator=g) for n in (12, 7)]
    seq = 12
    ids = torch.full((2, seq), 3)  # pad id 3
    targets = torch.full((2, seq), -100)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        targets[i, : len(r) - 1] = r[1:]
    # the reference: each row alone, unpadded (its last token has no target but is an input), summed over targets
    with torch.no_grad():
        ref = sum(model(input_ids=r[None], shift_labels=targets[i, None, : len(r)], loss_reduction="sum").loss
                  for i, r in enumerate(rows))
    ref = (ref / sum(len(r) - 1 for r in rows)).item()
    cfg = from_dict(TrainConfig, {"micro_batch": 2, "grad_accum": 1, "max_steps": 1})
    d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), mode="none")
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    batch = {"input_ids": ids, "shift_labels": targets, "lengths": torch.tensor([len(r) for r in rows])}
    trainer = Trainer(cfg, model, opt, Rows(batch), d, None, 1.0, {})
    loss, _, n_targets = trainer.train_step()
    assert n_targets == sum(len(r) - 1 for r in rows)
    # fp32 sums over T blocked differently by the padding: ~1e-6 relative; leaking pads moved it by 0.02-0.1
    assert loss == pytest.approx(ref, rel=1e-5)
