"""Every FFN variant against a straightforward reference written here (loops over tokens and slots).

The references read the module's weights but none of its code: per-token loops, explicit softmax, explicit
L2 norms. Outputs and the gradients w.r.t. the input and every parameter must agree.
"""

from __future__ import annotations

import math

import pytest
import torch

from steel.model.modeling_steel import make_ffn


def silu(x):
    return x / (1 + torch.exp(-x))


def softmax(v):  # 1-D
    e = torch.exp(v - v.max())
    return e / e.sum()


def expert_ref(e, v, expert_type):
    """One vector v (C,) through expert module e, from its weights."""
    if expert_type == "senet":
        h = silu(e.gate_up_proj.weight @ v) * (e.up_proj.weight @ v)
        return silu(e.gate_down_proj.weight @ h) * (e.down_proj.weight @ h)
    return e.down_proj.weight @ (silu(e.gate_proj.weight @ v) * (e.up_proj.weight @ v))


def soft_logits_ref(m, xb, normalised):
    """xb (T, C) -> (T, S) router logits."""
    if not normalised:
        return xb @ m.phi
    xn = torch.stack([r / torch.sqrt((r * r).sum()) for r in xb])
    pn = m.phi / torch.sqrt((m.phi * m.phi).sum(0, keepdim=True))
    return m.scale * (xn @ pn)


def reference(m, x, cfg):
    kind, p, n = cfg.ffn_type, cfg.slots_per_expert, cfg.num_experts
    B, T, _ = x.shape
    out = []
    for b in range(B):
        xb = x[b]
        if kind == "swiglu":
            rows = [expert_ref(m, xb[t], "swiglu") for t in range(T)]
        elif kind == "senet":
            rows = [expert_ref(m, xb[t], "senet") for t in range(T)]
        elif kind == "soft_moe_v1":
            rows = []
            for t in range(T):
                g = softmax(m.router.weight @ xb[t])
                rows.append(sum(g[i] * expert_ref(m.experts[i], xb[t], cfg.expert_type) for i in range(n)))
        elif kind in ("soft_moe_v2", "soft_moe_v3"):
            L = soft_logits_ref(m, xb, normalised=kind == "soft_moe_v3")  # (T, S)
            D = torch.stack([softmax(L[:, s]) for s in range(n * p)], 1)  # v3: over tokens
            Cw = torch.stack([softmax(L[t]) for t in range(T)])  # v3: over slots
            if kind == "soft_moe_v2":  # the published v2 swaps the two axes
                D = torch.stack([softmax(L[t]) for t in range(T)])
                Cw = torch.stack([softmax(L[:, s]) for s in range(n * p)], 1)
            ys = [expert_ref(m.experts[s // p], D[:, s] @ xb, cfg.expert_type) for s in range(n * p)]
            rows = [sum(Cw[t, s] * ys[s] for s in range(n * p)) for t in range(T)]
        elif kind == "soft_moe_causal":
            L = soft_logits_ref(m, xb, normalised=True)
            rows = []
            for t in range(T):
                last = (t // cfg.moe_chunk_size) * cfg.moe_chunk_size  # slots from tokens 0..last
                ys = [expert_ref(m.experts[s // p], softmax(L[: last + 1, s]) @ xb[: last + 1], cfg.expert_type)
                      for s in range(n * p)]
                c = softmax(L[t])
                rows.append(sum(c[s] * ys[s] for s in range(n * p)))
        out.append(torch.stack(rows))
    return torch.stack(out)


CASES = [
    dict(ffn_type="swiglu"),
    dict(ffn_type="senet"),
    dict(ffn_type="soft_moe_v1", expert_type="senet"),
    dict(ffn_type="soft_moe_v1", expert_type="swiglu"),
    dict(ffn_type="soft_moe_v2", expert_type="senet"),
    dict(ffn_type="soft_moe_v3", expert_type="senet"),
    dict(ffn_type="soft_moe_v3", expert_type="swiglu", slots_per_expert=1),
    dict(ffn_type="soft_moe_causal", expert_type="senet", moe_chunk_size=1),
    dict(ffn_type="soft_moe_causal", expert_type="swiglu", moe_chunk_size=3),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_ffn_forward_and_grads_match_reference(tiny_config, case):
    torch.manual_seed(0)
    # initializer_range 0.3: weights large enough that every branch (gates, slots, scale) moves the output.
    cfg = tiny_config(initializer_range=0.3, **case)
    m = make_ffn(cfg)
    for name, prm in m.named_parameters():
        torch.nn.init.normal_(prm, std=0.3 if prm.ndim > 1 else 1.0)
        if name == "scale":
            prm.data.abs_().add_(0.5)
    x = torch.randn(2, 7, cfg.hidden_size, requires_grad=True)  # odd T: 7 = 2 chunks of 3 + 1
    y = m(x)
    y_ref = reference(m, x, cfg)
    # fp32 with a different summation order (bmm vs per-token mat-vec, two chained layers of <= 128-term dot
    # products): errors of ~1e-6 relative to the largest output, so atol scales with it; rtol 1e-5 ~ 100 ulps.
    scale = y_ref.abs().max().item()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=2e-6 * scale)
    w = torch.randn_like(y)
    params = [x, *m.parameters()]
    grads = torch.autograd.grad((y * w).sum(), params)
    grads_ref = torch.autograd.grad((y_ref * w).sum(), params)
    names = ["x", *(n for n, _ in m.named_parameters())]
    for name, g, g_ref in zip(names, grads, grads_ref):
        # Backward adds a sum over B*T = 14 rows in different orders: the forward's budget, scaled per tensor.
        g_scale = g_ref.abs().max().item()
        rtol = 1e-5
        if g.numel() == 1:
            # The soft-MoE scale's gradient is one sum over B*T*S = 84 terms that mostly cancel (|sum| ~ 1/100 of
            # its terms), so its fp32 relative error is ~100x the per-term one: 1e-4.
            rtol = 1e-4
        torch.testing.assert_close(g, g_ref, rtol=rtol, atol=4e-6 * g_scale, msg=lambda msg: f"{name}: {msg}")
        assert g.abs().max() > 0 or math.isclose(g_ref.abs().max().item(), 0.0), f"{name}: zero gradient"
