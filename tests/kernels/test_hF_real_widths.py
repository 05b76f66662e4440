"""The kernels at the benchmark's real row widths, on a few rows: the block sizes, warps, vocabulary tiles and
masked tails the GPU runs, which the odd small shapes of the other kernel tests never reach (vocab 203 is
one 256-wide tile; a vocabulary of 151936 is ten MAX_BLOCK_V tiles with a masked tail, hidden 2048 is one
2048-wide RMSNorm block, 32/4 heads of 64 fill RoPE's head tiles). In the interpreter on CPU: seconds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tolerances import assert_close_scaled

from steel.kernels import (
    apply_rotary_pos_emb,
    apply_rotary_pos_emb_ref,
    fused_linear_cross_entropy,
    rms_norm,
    rms_norm_ref,
    silu_mul,
    silu_mul_ref,
)
from steel.kernels.cross_entropy import MAX_BLOCK_V


def _grads(fn, inputs, dys):
    xs = [t.detach().requires_grad_() for t in inputs]
    outs = fn(*xs)
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    return [*outs, *torch.autograd.grad(outs, xs, dys)]


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_over_many_vocabulary_tiles(device, smoothing):
    V, C = 151936, 16  # Qwen's vocabulary: ten 16384-wide tiles, the last one 4480 wide (masked)
    assert V > 9 * MAX_BLOCK_V and V % MAX_BLOCK_V
    g = torch.Generator().manual_seed(7)
    h = torch.randn(6, C, generator=g).to(device)
    w = (0.5 * torch.randn(V, C, generator=g)).to(device)
    # the label in the first tile, at a tile edge, in the masked last tile, its last column, ignored
    labels = torch.tensor([3, MAX_BLOCK_V, 9 * MAX_BLOCK_V + 17, V - 1, -100, 5 * MAX_BLOCK_V - 1], device=device)
    # A big logit in the last tile: the online max must move across tiles (its exp must not overflow).
    w[V - 1] = 4 * h[3] / h[3].norm()
    dloss = 1.5  # a non-unit upstream gradient
    ours = _grads(
        lambda a, b: fused_linear_cross_entropy(a, b, labels, label_smoothing=smoothing, chunk_size=4, impl="triton"),
        (h, w), [torch.tensor(dloss, device=device)],
    )
    # The exact values: float64 logits and cross-entropy on the same inputs (the op's own reference computes
    # its cross-entropy in fp32).
    h64, w64 = h.double(), w.double()
    ref = _grads(
        lambda a, b: F.cross_entropy(a @ b.t(), labels, label_smoothing=smoothing), (h64, w64),
        [torch.tensor(dloss, dtype=torch.float64, device=device)],
    )
    # The magnitudes of the terms of d loss / d logits = (p - (1 - eps) onehot - eps / V) / n before they
    # cancel (with smoothing, p_j ~ eps / V on most columns), for the error bounds.
    valid = (labels != -100).double()[:, None]
    terms = (torch.softmax(h64 @ w64.t(), -1) + (1 - smoothing) * F.one_hot(labels.clamp(min=0), V) + smoothing / V)
    terms = terms * valid * dloss / valid.sum()
    # NOTE: fp32 (u = 2^-24). A logit's 16-term GEMM is off by ~4 u of sum |h_c w_c| (absolute), which exp
    # turns into a relative error of p_j: ~50 u here. dh sums 151936 such terms times W: fp32 summation adds
    # ~sqrt(terms) u of the sum of |terms|. So 256 u + 4 sqrt(terms) u of the sum of |terms| per element (the
    # kernel is 8x inside it on dh, 5x on dw); a wrong tile, mask or label column is off by O(1) of it.
    u = 2.0**-24
    bound = lambda magnitude, n: (256 + 4 * n**0.5) * u * magnitude  # noqa: E731
    loss, dh, dw = (t.double() for t in ours)
    assert abs(loss - ref[0]) <= bound(ref[0].abs(), V)  # per row: a log-sum-exp over V
    assert ((dh - ref[1]).abs() <= bound(terms @ w64.abs(), V)).all()
    assert ((dw - ref[2]).abs() <= bound(terms.t() @ h64.abs(), len(labels))).all()


def test_rmsnorm_at_hidden_2048(device):
    g = torch.Generator().manual_seed(8)
    x = (2 * torch.randn(3, 2048, generator=g)).to(device)
    w = (1 + 0.5 * torch.randn(2048, generator=g)).to(device)
    dy = torch.randn(3, 2048, generator=g).to(device)
    ours = _grads(lambda a, b: rms_norm(a, b, 1e-6, impl="triton"), (x, w), [dy])
    ref = _grads(lambda a, b: rms_norm_ref(a, b, 1e-6), (x, w), [dy])
    for a, r in zip(ours, ref):
        assert_close_scaled(a, r, 1e-6)  # fp32, 2048-term sums in another order: a few ulps


def test_rope_with_the_benchmark_heads(device):
    B, HQ, HK, T, D = 1, 32, 4, 3, 64  # the 1.1B Llama shape's heads
    g = torch.Generator().manual_seed(9)
    q = torch.randn(B, T, HQ, D, generator=g).to(device).transpose(1, 2)  # as attention views its projection
    k = torch.randn(B, T, HK, D, generator=g).to(device).transpose(1, 2)
    angles = torch.arange(T, dtype=torch.float32)[:, None] * 10000.0 ** (-torch.arange(0, D, 2) / D)
    emb = torch.cat((angles, angles), -1)[None].to(device)  # (1, T, D)
    dys = [torch.randn(B, HQ, T, D, generator=g).to(device), torch.randn(B, HK, T, D, generator=g).to(device)]
    ours = _grads(lambda a, b: apply_rotary_pos_emb(a, b, emb.cos(), emb.sin(), impl="triton"), (q, k), dys)
    ref = _grads(lambda a, b: apply_rotary_pos_emb_ref(a, b, emb.cos(), emb.sin()), (q, k), dys)
    for a, r in zip(ours, ref):
        assert_close_scaled(a, r, 1e-6)  # fp32: two products and a sum, one rounding apart


def test_silu_mul_at_the_ffn_width(device):
    g = torch.Generator().manual_seed(10)
    a, b, dy = (torch.randn(2, 5632, generator=g).to(device) for _ in range(3))  # more than one 1024 block
    ours = _grads(lambda x, y: silu_mul(x, y, impl="triton"), (a, b), [dy])
    ref = _grads(silu_mul_ref, (a, b), [dy])
    for x, r in zip(ours, ref):
        assert_close_scaled(x, r, 1e-6)  # fp32 elementwise: sigmoid's last ulps
