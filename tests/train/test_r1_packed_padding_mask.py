"""Packed SFT rows (`packing: true`): several EOS-ended conversations, then EOS padding to seq_len, with
`document_mask` on. For soft MoE v2/v3 the trainer's 2-D padding mask (from `lengths`) and the document mask
act together: the tail pads are EOS, so each is a document of its own whose query sees no key at all (a fully
masked attention row). The loss must be what each row's data gives alone, unpadded, and finite."""

from __future__ import annotations

import pytest
import torch

from steel.config import from_dict
from steel.model import build_model, load_model_config
from steel.train.config import TrainConfig
from steel.train.distributed import Dist
from steel.train.trainer import Trainer

EOS = 0  # tiny.yaml's eos_token_id


class Rows:
    def __init__(self, batch):
        self.batch = batch

    def next_batch(self):
        return self.batch


@pytest.mark.filterwarnings("ignore::steel.model.SteelCausalityWarning")
@pytest.mark.parametrize("ffn", ["soft_moe_v3", "soft_moe_v2"])
def test_packed_rows_with_tail_padding_train_on_their_data_alone(ffn):
    cfg = load_model_config("tiny", [f"ffn_type={ffn}", "document_mask=true", "initializer_range=0.2"])
    torch.manual_seed(0)
    model = build_model(cfg)
    g = torch.Generator().manual_seed(3)
    seq = 16
    # row 0: documents of 5 and 6 tokens (each ends with EOS), 5 pads; row 1: one document of 7, 9 pads
    docs = [[5, 6], [7]]
    ids = torch.full((2, seq), EOS)
    lengths = []
    for i, sizes in enumerate(docs):
        pos = 0
        for n in sizes:
            ids[i, pos : pos + n - 1] = torch.randint(1, 512, (n - 1,), generator=g)
            pos += n  # ids[i, pos - 1] stays EOS: the document's end
        lengths.append(pos)
    targets = torch.full((2, seq), -100)
    for i, n in enumerate(lengths):
        targets[i, : n - 1] = ids[i, 1:n]  # next-token targets inside the data only
    n_targets = sum(n - 1 for n in lengths)
    with torch.no_grad():
        ref = sum(model(input_ids=ids[i, None, :n], shift_labels=targets[i, None, :n], loss_reduction="sum").loss
                  for i, n in enumerate(lengths))
    ref = (ref / n_targets).item()
    tcfg = from_dict(TrainConfig, {"micro_batch": 2, "grad_accum": 1, "max_steps": 1})
    d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), mode="none")
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    batch = {"input_ids": ids, "shift_labels": targets, "lengths": torch.tensor(lengths)}
    loss, norm, count = Trainer(tcfg, model, opt, Rows(batch), d, None, 1.0, {}).train_step()
    assert count == n_targets
    assert torch.isfinite(torch.tensor(norm))
    # fp32 sums over T blocked differently by the padding: ~1e-6 relative (as test_trainer_padding_mask);
    # the pads leaking into the slots moved it by far more (checked on the trainer before a6b621b)
    assert loss == pytest.approx(ref, rel=1e-5)
