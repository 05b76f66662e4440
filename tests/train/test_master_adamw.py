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
    # odd steps: norm ~30, clipped at 1.0; even steps: norm ~0.3, not clipped
    g = torch.Generator().manual_seed(100 + step)
    return [(torch.randn(s, generator=g) * (3.0 if step % 2 else 0.01)).to(torch.bfloat16) for s in SHAPES]


def _groups(ps):
    return [{"params": [ps[0], ps[2], ps[3]], "weight_decay": 0.1}, {"params": [ps[1], ps[4]], "weight_decay": 0.0}]


@pytest.mark.parametrize("bucket_bytes,buckets", [(1, 5), (4 * 64 * 33, 4), (2**30, 2)])  # per tensor .. per group
@pytest.mark.parametrize("max_norm", [None, 1.0])
def test_matches_fp32_adamw_with_clipping(bucket_bytes, buckets, max_norm, monkeypatch):
    model = _params(torch.bfloat16)  # the bf16 model parameters
    ref = [p.detach().float().clone().requires_grad_() for p in model]  # fp32 parameters of the reference
    opt = MasterWeightAdamW(_groups(model), lr=1e-2, betas=(0.9, 0.95), eps=1e-8, bucket_bytes=bucket_bytes)
    ref_opt = torch.optim.AdamW(_groups(ref), lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    calls = []
    real = MasterWeightAdamW._step_bucket
    monkeypatch.setattr(MasterWeightAdamW, "_step_bucket", lambda self, *a: calls.append(1) or real(self, *a))
    for step in range(6):
        lr = 1e-2 * (step + 1) / 6  # the schedule writes param_groups; both must follow it
        for g, rg in zip(opt.param_groups, ref_opt.param_groups):
            g["lr"] = rg["lr"] = lr
        for p, r, gr in zip(model, ref, _grads(step)):
            p.grad, r.grad = gr.clone(), gr.float()
        if max_norm is not None:
            # NOTE: the reference sums the per-tensor norms in the optimizer's order, as MasterWeightAdamW does:
            # torch 2.6's vector_norm of those 5 norms depends on their order (1 ulp at step 4), torch 2.11's not.
            in_groups = [r for g in ref_opt.param_groups for r in g["params"]]
            norm, ref_norm = opt.clip_grad_norm_(max_norm), torch.nn.utils.clip_grad_norm_(in_groups, max_norm)
            assert torch.equal(norm, ref_norm)
        opt.step()
        ref_opt.step()
        ref_opt.zero_grad()
        for i, (p, r) in enumerate(zip(model, ref)):
            assert torch.equal(opt.state[p]["master"], r.detach()), f"step {step}, param {i}: master differs"
            assert torch.equal(p.detach(), r.detach().to(torch.bfloat16)), "bf16 param is not the rounded master"
            assert p.grad is None
            for k in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(opt.state[p][k], ref_opt.state[r][k]), (step, i, k)
    assert len(calls) == 6 * buckets


def _run(steps, opt, model):
    for step in steps:
        for p, gr in zip(model, _grads(step)):
            p.grad = gr.clone()
        opt.clip_grad_norm_(1.0)
        opt.step()


def test_state_dict_round_trip_continues_identically():
    model_a = _params(torch.bfloat16)
    a = MasterWeightAdamW(_groups(model_a), lr=1e-2)
    _run(range(6), a, model_a)

    model_b = _params(torch.bfloat16)
    b = MasterWeightAdamW(_groups(model_b), lr=1e-2)
    _run(range(3), b, model_b)
    state = b.state_dict()
    model_c = [torch.zeros_like(p).requires_grad_() for p in model_b]  # fresh model: weights come from state
    c = MasterWeightAdamW(_groups(model_c), lr=5.0)
    c.load_state_dict(state)
    assert c.param_groups[0]["lr"] == 1e-2
    # Optimizer.load_state_dict alone would have cast the masters and moments to bf16
    assert all(c.state[p]["master"].dtype == torch.float32 for p in model_c)
    _run(range(3, 6), c, model_c)
    for p, q in zip(model_a, model_c):
        assert torch.equal(p.detach(), q.detach())
        assert torch.equal(a.state[p]["master"], c.state[q]["master"])
        assert torch.equal(a.state[p]["exp_avg_sq"], c.state[q]["exp_avg_sq"])


def test_distributed_checkpoint_state_dict_keeps_fp32():
    # torch.distributed.checkpoint's get/set_state_dict is what steel.train.checkpoint saves and loads with
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    def make():
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Linear(5, 3)).to(torch.bfloat16)
        return m, MasterWeightAdamW(m.parameters(), lr=1e-2)

    m1, o1 = make()
    for _ in range(2):
        m1(torch.randn(4, 7, dtype=torch.bfloat16)).float().pow(2).sum().backward()
        o1.step()
    msd, osd = get_state_dict(m1, o1)
    assert osd["state"]["0.weight"]["master"].dtype == torch.float32
    m2, o2 = make()
    set_state_dict(m2, o2, model_state_dict=msd, optim_state_dict=osd)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
        assert torch.equal(o1.state[p]["master"], o2.state[q]["master"])
        assert torch.equal(o1.state[p]["exp_avg"], o2.state[q]["exp_avg"])


def test_fused_step_count_is_restored_on_the_parameters_device():
    """torch.distributed.checkpoint gives 0-d tensors back on the CPU; Optimizer moves `step` to the
    parameter's device only for param groups marked "fused", which ours are not. The fused CUDA kernel
    then read a host pointer. "meta" stands in for the GPU here: any non-CPU device shows the move."""
    p = torch.zeros(3, dtype=torch.bfloat16, device="meta", requires_grad=True)
    opt = MasterWeightAdamW([p], lr=1e-2, fused=True)
    state = {"state": {0: {"step": torch.tensor(7.0), "master": torch.zeros(3), "exp_avg": torch.zeros(3),
                           "exp_avg_sq": torch.zeros(3)}},
             "param_groups": [{**opt.param_groups[0], "params": [0]}]}
    opt.load_state_dict(state)
    assert opt.state[p]["step"].device.type == "meta" and opt.state[p]["master"].device.type == "meta"
    assert opt.state[p]["step"].dtype == torch.float32
    # Not fused: on the CPU, as torch.optim.AdamW keeps it.
    q = torch.zeros(3, dtype=torch.bfloat16, device="meta", requires_grad=True)
    opt = MasterWeightAdamW([q], lr=1e-2)
    opt.load_state_dict(state)
    assert opt.state[q]["step"].device.type == "cpu"
