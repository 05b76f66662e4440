"""RoPE kernel: q and k together, forward and every gradient vs the reference and HF's function."""

from __future__ import annotations

import torch
from tolerances import assert_close_scaled, bf16_rounding
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb as hf_apply_rotary_pos_emb

from steel.kernels import apply_rotary_pos_emb, apply_rotary_pos_emb_ref

B, HQ, HK, T, D = 2, 6, 2, 7, 10  # GQA (3 q heads per k head), odd T, D/2 = 5 is not a power of two


def _inputs(device, dtype, cos_batch=1):
    g = torch.Generator().manual_seed(1)
    # q as HF makes it: a (B, T, H, D) projection viewed as (B, H, T, D): strided, not contiguous
    q = torch.randn(B, T, HQ, D, generator=g).to(device, dtype).transpose(1, 2)
    k = torch.randn(B, T, HK, D, generator=g).to(device, dtype).transpose(1, 2)
    pos = (
        torch.arange(T, dtype=torch.float32)[None].expand(cos_batch, T) + 3 * torch.arange(cos_batch)[:, None]
    )
    inv_freq = 1.0 / (10000 ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    emb = torch.cat((pos[..., None] * inv_freq,) * 2, dim=-1)  # (cos_batch, T, D)
    dq = torch.randn(B, HQ, T, D, generator=g).to(device, dtype)
    dk = torch.randn(B, HK, T, D, generator=g).to(device, dtype)
    return q, k, emb.cos().to(device, dtype), emb.sin().to(device, dtype), dq, dk


def _run(fn, q, k, cos, sin, dq, dk, cos_grad=False):
    q, k = q.detach().requires_grad_(), k.detach().requires_grad_()
    cos, sin = cos.detach().requires_grad_(cos_grad), sin.detach().requires_grad_(cos_grad)
    qe, ke = fn(q, k, cos, sin)
    wrt = (q, k, cos, sin) if cos_grad else (q, k)
    return (qe, ke, *torch.autograd.grad((qe, ke), wrt, (dq.to(qe.dtype), dk.to(ke.dtype))))


def test_fp32_matches_hf(device):
    q, k, cos, sin, dq, dk = _inputs(device, torch.float32, cos_batch=B)
    ours = _run(lambda *a: apply_rotary_pos_emb(*a, impl="triton"), q, k, cos, sin, dq, dk)
    hf = _run(hf_apply_rotary_pos_emb, q, k, cos, sin, dq, dk)
    ref = _run(apply_rotary_pos_emb_ref, q, k, cos, sin, dq, dk)
    for a, b, c in zip(ours, hf, ref):
        # NOTE: two products and one sum per element in fp32 in both: at most one fp32 rounding apart
        # (HF rounds the products separately), 2^-23 relative; 1e-6 is ~8 ulps.
        assert_close_scaled(a, b, 1e-6)
        assert torch.equal(b, c)  # the reference is HF's formula


def test_cos_sin_gradients_and_broadcast_batch(device):
    # HF passes cos/sin with batch 1 when position_ids are shared; gradients wrt them are summed.
    q, k, cos, sin, dq, dk = _inputs(device, torch.float32, cos_batch=1)
    ours = _run(lambda *a: apply_rotary_pos_emb(*a, impl="triton"), q, k, cos, sin, dq, dk, cos_grad=True)
    ref = _run(apply_rotary_pos_emb_ref, q, k, cos, sin, dq, dk, cos_grad=True)
    assert ours[0].shape == (B, HQ, T, D) and ours[4].shape == (1, T, D)
    for a, b in zip(ours, ref):
        assert_close_scaled(a, b, 1e-6)  # fp32 sums over 16 heads x 2 batches: a few ulps


def test_bf16_against_fp32_reference(device):
    q, k, cos, sin, dq, dk = _inputs(device, torch.bfloat16, cos_batch=B)
    ours = _run(lambda *a: apply_rotary_pos_emb(*a, impl="triton"), q, k, cos, sin, dq, dk)
    assert all(t.dtype == torch.bfloat16 for t in ours)
    ref = _run(
        apply_rotary_pos_emb_ref, q.float(), k.float(), cos.float(), sin.float(), dq.float(), dk.float()
    )
    # NOTE: the kernel computes in fp32 from the same bf16 inputs and rounds once at the store; the
    # magnitude of x1*c - x2*s is at most sqrt(2) * max|x|, so one rounding of max|expected| bounds it.
    for a, b in zip(ours, ref):
        assert_close_scaled(a, b, bf16_rounding(device))


def test_compile_matches_eager(device):
    q, k, cos, sin, dq, dk = _inputs(device, torch.float32)
    fn = lambda *a: apply_rotary_pos_emb(*a, impl="triton")
    eager = _run(fn, q, k, cos, sin, dq, dk)
    compiled = _run(torch.compile(fn, backend="aot_eager", fullgraph=True), q, k, cos, sin, dq, dk)
    for a, b in zip(eager, compiled):
        assert torch.equal(a, b)  # same kernel, same inputs: bit-identical


def test_double_backward_matches_reference(device):
    # The backward is the rope op itself (transposed), so create_graph=True differentiates it again: its
    # gradient is the forward rotation, and its cos/sin gradients are those of the transposed formula.
    # The backward always applied the transpose, so second derivatives came out silently wrong.
    q, k, cos, sin, dq, dk = _inputs(device, torch.float32, cos_batch=B)
    g = torch.Generator().manual_seed(7)
    a = torch.rand(B, HQ, T, D, generator=g).to(device)  # makes the loss quadratic in the rotated q
    v = torch.randn(B, HQ, T, D, generator=g).to(device)

    def hvp(fn):
        leaves = [t.detach().requires_grad_() for t in (q, k, cos, sin)]
        qe, ke = fn(*leaves)
        loss = (qe * qe * a).sum() + (ke * ke * dk).sum() + (qe * cos.unsqueeze(1)).sum()
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
        second = sum((g1 * w).sum() for g1, w in zip(grads, (v, dk, cos, sin)))
        return torch.autograd.grad(second, leaves)

    ours = hvp(lambda *t: apply_rotary_pos_emb(*t, impl="triton"))
    ref = hvp(apply_rotary_pos_emb_ref)
    for a_, r in zip(ours, ref):
        # NOTE: fp32, a few products and sums over <= 16 heads per element: a few ulps; 1e-6 is ~8 ulps.
        assert_close_scaled(a_, r, 1e-6)
