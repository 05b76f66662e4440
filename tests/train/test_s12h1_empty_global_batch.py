"""A global batch in which no position has a target (every label -100: SFT rows whose trained turns were all
truncated away) skips the optimizer step: there is no gradient signal, yet AdamW's momentum and weight decay moved
every weight (and advanced its bias-correction step). The data is consumed and the step counted (in `skipped`),
as for a non-finite loss; the next real step is the one a run without the empty batch takes (constant LR here).
"""

from __future__ import annotations

import math

import torch

from steel.config import from_dict
from steel.model import build_model, load_model_config
from steel.train.config import TrainConfig
from steel.train.distributed import Dist
from steel.train.optim import build_optimizer
from steel.train.trainer import Trainer

B, T = 2, 10


class Batches:
    def __init__(self, batches):
        self.batches = iter(batches)

    def next_batch(self):
        return next(self.batches)


def _batch(seed: int, empty: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 200, (B, T), generator=g)
    targets = torch.full((B, T), -100) if empty else torch.randint(5, 200, (B, T), generator=g)
    return {"input_ids": ids, "shift_labels": targets}


def _trainer(batches) -> Trainer:
    cfg = from_dict(TrainConfig, {"micro_batch": B, "grad_accum": 1, "max_steps": 3,
                                  "optim": {"lr": 1e-2, "warmup_steps": 0, "schedule": "constant",
                                            "weight_decay": 0.1}})
    torch.manual_seed(0)
    model = build_model(load_model_config("tiny"))
    d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), mode="none")
    return Trainer(cfg, model, build_optimizer(model, cfg.optim, d.device), Batches(batches), d, None, 1.0, {})


def _snapshot(t: Trainer) -> tuple[dict, list]:
    params = {k: v.detach().clone() for k, v in t.model.named_parameters()}
    opt = [{k: v.clone() for k, v in t.optimizer.state[p].items()} for p in t.model.parameters()]
    return params, opt


def _same(a: tuple[dict, list], b: tuple[dict, list]) -> bool:
    return all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a[1], b[1]))


def test_a_global_batch_without_targets_leaves_weights_and_optimizer_untouched():
    run = _trainer([_batch(1), _batch(2, empty=True), _batch(3)])
    ref = _trainer([_batch(1), _batch(3)])  # the same run without the empty batch
    run.train_step(), ref.train_step()
    before = _snapshot(run)
    assert _same(before, _snapshot(ref))
    loss, norm, targets = run.train_step()  # the empty batch
    assert targets == 0 and norm == 0.0 and math.isnan(loss)  # no loss is defined: null in metrics.jsonl
    assert run.state.skipped == 1 and run.state.nonfinite_run == 0
    assert run.step_positions == B * T  # its data counts as read
    assert _same(_snapshot(run), before)  # bit-identical weights and AdamW state (step count included)
    assert all(p.grad is None for p in run.model.parameters())
    run.train_step(), ref.train_step()
    assert _same(_snapshot(run), _snapshot(ref))
    assert not _same(_snapshot(run), before)  # that step did train
