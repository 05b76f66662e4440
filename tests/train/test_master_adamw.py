"""MasterWeightAdamW against torch.optim.AdamW + clip_grad_norm_ on fp32 parameters, bit for bit."""

from __future__ import annotations

import pytest
import torch

from steel.train.master_adamw import MasterWeightAdamW

SHAPES = [(37, 19), (19,), (64, 33), (5, 7, 3), (101,)]


def _params(dtype):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=g).to(dtype).requires_grad_() for s in SHAPES]


def _grads(step):
    g = torch.Generator().manual_seed(100 + step)
    return [(torch.randn(s, generator=g) * (3.0 if step % 2 else 0.01)).to(torch.bfloat16) for s in SHAPES]


@pytest.mark.parametrize("bucket_bytes", [1, 4 * 64 * 33, 2**30])  # one tensor per bucket .. one bucket
@pytest.mark.parametrize("max_norm", [None, 1.0])
def test_matches_fp32_adamw_with_clipping(bucket_bytes, max_norm):
    model = _params(torch.bfloat16)  # the bf16 model parameters
    ref = [p.detach().float().clone().requires_grad_() for p in model]  # fp32 parameters of the reference
    groups = lambda ps: [{"params": [ps[0], ps[2], ps[3]], "weight_decay": 0.1},
                         {"params": [ps[1], ps[4]], "weight_decay": 0.0}]
    opt = MasterWeightAdamW(groups(model), lr=1e-2, betas=(0.9, 0.95), eps=1e-8, bucket_bytes=bucket_bytes)
    ref_opt = torch.optim.AdamW(groups(ref), lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    assert len(opt._buckets) == {1: 5, 4 * 64 * 33: 3, 2**30: 1}[bucket_bytes]  # sizes in group order
    for step in range(6):
        lr = 1e-2 * (step + 1) / 6  # the schedule writes param_groups; both must follow it
        for g, rg in zip(opt.param_groups, ref_opt.param_groups):
            g["lr"] = rg["lr"] = lr
        grads = _grads(step)
        for p, r, gr in zip(model, ref, grads):
            p.grad, r.grad = gr.clone(), gr.float()
        norm = opt.step(max_norm)
        if max_norm is not None:
            ref_norm = torch.nn.utils.clip_grad_norm_(ref, max_norm)
            assert torch.equal(norm, ref_norm)
        ref_opt.step()
        ref_opt.zero_grad()
        order = [next(i for i, q in enumerate(model) if q is p) for p in opt.params]  # group order
        for p, m, r in zip(opt.params, opt.master, [ref[i] for i in order]):
            assert torch.equal(m, r.detach()), f"step {step}: master weight differs from fp32 AdamW"
            assert torch.equal(p.detach(), r.detach().to(torch.bfloat16)), "bf16 param is not the rounded master"
            assert p.grad is None
    # The odd steps' gradients (norm ~30) were clipped: the run really exercised clipping.
    for m, r in zip(opt.master, [ref[i] for i in order]):
        st = ref_opt.state[r]
        mine = next(o.state[m] for _, o in opt._buckets if m in o.state)
        assert torch.equal(mine["exp_avg"], st["exp_avg"]) and torch.equal(mine["exp_avg_sq"], st["exp_avg_sq"])


def test_state_dict_round_trip_continues_identically():
    def run(steps, opt, model):
        for step in steps:
            for p, gr in zip(model, _grads(step)):
                p.grad = gr.clone()
            opt.step(1.0)

    model_a = _params(torch.bfloat16)
    a = MasterWeightAdamW(model_a, lr=1e-2, bucket_bytes=4 * 64 * 33)
    run(range(6), a, model_a)

    model_b = _params(torch.bfloat16)
    b = MasterWeightAdamW(model_b, lr=1e-2, bucket_bytes=4 * 64 * 33)
    run(range(3), b, model_b)
    state = b.state_dict()
    model_c = [torch.zeros_like(p).requires_grad_() for p in model_b]  # fresh model: weights come from state
    c = MasterWeightAdamW(model_c, lr=5.0, bucket_bytes=4 * 64 * 33)
    c.load_state_dict(state)
    assert c.param_groups[0]["lr"] == 1e-2
    run(range(3, 6), c, model_c)
    for x, y in zip(a.master + model_a, c.master + model_c):
        assert torch.equal(x.detach(), y.detach())


def test_load_state_dict_of_another_model_is_refused():
    opt = MasterWeightAdamW(_params(torch.bfloat16)[:2])
    with pytest.raises(ValueError, match="holds 5 parameters"):
        opt.load_state_dict(MasterWeightAdamW(_params(torch.bfloat16)).state_dict())
