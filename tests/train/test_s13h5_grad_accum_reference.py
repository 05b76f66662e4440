"""Gradient accumulation: the step's gradient is the mean over every target token of the global batch.

A mutation audit (session 13) normalised each micro-batch by its own target count and divided by
`grad_accum` (a mean of per-micro-batch means) and the suite stayed green: pretraining micro-batches all
hold the same number of targets, where both agree, and the HF-labels test uses one micro-batch. SFT's
micro-batches hold different numbers of trained tokens (prompts and padding are masked), where a mean of
means over-weights the tokens of short replies.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from train_fixtures import make_data_dir, tiny_config

from steel.train.trainer import main, setup


def test_grad_accum_gradient_is_the_token_mean_over_the_global_batch(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000])
    cfg = tiny_config(tmp_path, [data], max_steps=1, grad_accum=2, micro_batch=2, optim={"grad_clip": 0.0})
    trainer = main(setup(str(cfg)))
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(1, 256, (2, 16), generator=g) for _ in range(2)]
    labels = [x.clone() for x in ids]
    labels[0][:, :13] = -100  # micro-batch 0: 2 x 3 = 6 targets (a short reply)
    labels[1][:, :2] = -100  # micro-batch 1: 2 x 14 = 28 targets

    class Fixed:
        i = 0

        def next_batch(self):
            self.i += 1
            return {"input_ids": ids[self.i - 1], "labels": labels[self.i - 1]}

        def state_dict(self):
            return {}

    trainer.data = Fixed()
    ref_model = copy.deepcopy(trainer.model)
    # Reference: summed next-token CE over both micro-batches, divided by all 34 targets, one backward.
    total, n = 0.0, 0
    for x, y in zip(ids, labels):
        logits = ref_model(input_ids=x).logits
        t = y[:, 1:]
        total = total + F.cross_entropy(logits[:, :-1].flatten(0, 1), t.flatten(), ignore_index=-100, reduction="sum")
        n += int((t != -100).sum())
    assert n == 34
    (total / n).backward()
    ref = {k: p.grad.clone() for k, p in ref_model.named_parameters()}

    got = {}
    trainer.optimizer.step = lambda: got.update({k: p.grad.clone() for k, p in trainer.model.named_parameters()})
    loss, _, count = trainer.train_step()
    trainer.metrics.close()
    assert count == 34
    assert loss == pytest.approx(float(total / n), rel=1e-6)  # same fp32 math, another summation order
    assert got.keys() == ref.keys()
    for k in ref:
        # fp32, same math summed in another order (two backward passes instead of one): 1e-5 relative.
        torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-8, msg=k)
