"""Kernel semantics the other kernel tests could not see (each was shown by a deliberate bug that they let pass):

- RoPE with cos/sin whose two halves differ: the kernel's docstring says it uses both halves as given, but the
  other tests build cos/sin as cat(freqs, freqs), so a kernel reading the first half twice (or a backward that
  transposes the rotation as if the halves were equal) passed them all.
- RMSNorm rounds the normalised value to the input dtype BEFORE the weight (as HF's Qwen2RMSNorm), in the
  forward and in the weight gradient: dropping either rounding stayed inside the bf16 tolerances.
- RMSNorm's eps: with rows of unit scale, eps = 1e-6 moves the output by ~5e-7 relative, under the 1e-6
  tolerance, so a kernel ignoring eps passed. Rows whose mean square is near eps make it count.
- Label smoothing's loss term eps * mean(logits) over a vocabulary of logits centred near 0 is ~0 either way:
  dividing the sum by V - 1 instead of V passed. Logits with a common offset (the loss does not depend on it)
  make that term large.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tolerances import assert_close_scaled
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb as hf_apply_rotary_pos_emb

from steel.kernels import (
    apply_rotary_pos_emb,
    fused_linear_cross_entropy,
    fused_linear_cross_entropy_ref,
    rms_norm,
)

B, HQ, HK, T, D = 2, 6, 2, 7, 10


def _grads(fn, inputs, dys):
    leaves = [t.detach().requires_grad_() for t in inputs]
    outs = fn(*leaves)
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    return [*outs, *torch.autograd.grad(outs, leaves, dys)]


def test_rope_uses_both_halves_of_cos_and_sin(device):
    g = torch.Generator().manual_seed(11)
    q = torch.randn(B, T, HQ, D, generator=g).to(device).transpose(1, 2)  # strided, as the model makes it
    k = torch.randn(B, T, HK, D, generator=g).to(device).transpose(1, 2)
    dq, dk = torch.randn(B, HQ, T, D, generator=g).to(device), torch.randn(B, HK, T, D, generator=g).to(device)
    for cos_batch in (B, 1):
        # Independent values in every entry: cos[..., :D/2] != cos[..., D/2:], same for sin.
        cos = torch.randn(cos_batch, T, D, generator=g).to(device)
        sin = torch.randn(cos_batch, T, D, generator=g).to(device)
        assert not torch.equal(cos[..., : D // 2], cos[..., D // 2 :])
        ours = _grads(lambda *a: apply_rotary_pos_emb(*a, impl="triton"), (q, k, cos, sin), (dq, dk))
        hf = _grads(hf_apply_rotary_pos_emb, (q, k, cos, sin), (dq, dk))
        for name, a, b in zip(("q", "k", "dq", "dk", "dcos", "dsin"), ours, hf):
            # NOTE: fp32, two products and a sum per element (the cos/sin gradients sum <= 16 heads x 2 rows):
            # a few ulps as in test_rope.py, where 1e-6 is ~8 ulps of the largest entry. A wrong half is O(1).
            assert a.shape == b.shape, name
            assert_close_scaled(a, b, 1e-6)


def test_rms_norm_rounds_to_the_input_dtype_before_the_weight(device):
    # bf16 activations, fp32 weights (autocast training): y = w * bf16(n) in fp32. With weights that are powers
    # of two, y / w is exactly the kernel's bf16(n) whatever the rounding mode: it must be a bf16 value.
    g = torch.Generator().manual_seed(12)
    x = (2.0 * torch.randn(3, 37, 67, generator=g)).to(device, torch.bfloat16)
    w = (2.0 ** torch.randint(-1, 2, (67,), generator=g).float()).to(device)
    dy = torch.randn(3, 37, 67, generator=g).to(device, torch.bfloat16)
    y, dx, dw = _grads(lambda a, b: rms_norm(a, b, 1e-6, impl="triton"), (x, w), [dy.float()])
    assert y.dtype == dw.dtype == torch.float32
    n = y / w  # exact: division by a power of two
    assert torch.equal(n.bfloat16().float(), n), "the normalised value was not rounded to bf16 before the weight"
    # The weight gradient sums dy * bf16(n) over the 111 rows, the same rounded n as the forward. Exact sum in
    # fp64 from the forward's own n; NOTE: fp32 summation of 111 terms is within (111 - 1) u of the sum of their
    # magnitudes (u = 2^-24, the recursive-summation bound); one bf16 rounding of n (2^-8) is far outside.
    terms = (dy.double() * n.double()).reshape(-1, 67)
    err = (dw.double() - terms.sum(0)).abs()
    assert (err <= 110 * 2.0**-24 * terms.abs().sum(0)).all(), err.max()


def test_rms_norm_eps_counts_where_rows_are_small(device):
    # Rows with mean square ~1e-6 (a tenth of them ~1e-8, where eps dominates): eps = 1e-6 changes y by O(1).
    g = torch.Generator().manual_seed(13)
    x = torch.randn(3, 37, 67, generator=g) * 1e-3
    x[:, ::10] *= 0.1
    w = (1.0 + 0.5 * torch.randn(67, generator=g)).to(device)
    x, dy = x.to(device), torch.randn(3, 37, 67, generator=g).to(device)
    for eps in (1e-6, 1e-5):
        ours = _grads(lambda a, b: rms_norm(a, b, eps, impl="triton"), (x, w), [dy])
        hf = Qwen2RMSNorm(67, eps=eps).to(device)
        hf.weight.data.copy_(w)
        want = _grads(lambda a, b: torch.func.functional_call(hf, {"weight": b}, (a,)), (x, w), [dy])
        # NOTE: fp32 vs fp32, the tolerances of test_rmsnorm.py's fp32 test (a few ulps of 67- and 111-term
        # sums). Here y and dx are relative to the rows' own scale (max|expected|), as there.
        for a, b, rel in zip(ours, want, (1e-6, 1e-6, 2e-6)):
            assert_close_scaled(a, b, rel)


def test_label_smoothing_loss_with_offset_logits(device):
    # A common offset c of all logits changes no loss (lse and every logit move by c); the smoothing term
    # eps * sum_j x_j / V then carries eps * c, which a wrong divisor turns into an error of eps * c / V.
    g = torch.Generator().manual_seed(14)
    N, C, V = 37, 67, 203
    h = torch.randn(N, C, generator=g).to(device)
    w = (0.4 * torch.randn(V, C, generator=g)).to(device)
    b = (20.0 + torch.randn(V, generator=g)).to(device)  # logits ~ 20 +- a few, like a trained head's
    labels = torch.randint(0, V, (N,), generator=g)
    labels[::4] = -100
    labels = labels.to(device)
    dloss = torch.tensor(1.5, device=device)
    fused = lambda a, bb, c: fused_linear_cross_entropy(a, bb, labels, label_smoothing=0.1, bias=c, chunk_size=16,
                                                        impl="triton")
    ours = _grads(fused, (h, w, b), [dloss])
    ref = _grads(lambda a, bb, c: fused_linear_cross_entropy_ref(a, bb, labels, label_smoothing=0.1, bias=c),
                 (h, w, b), [dloss])
    # NOTE: fp32; lse ~ 25 and the loss ~ 5 cancel ~2 digits: a few ulps of 25 (2e-6 each) on a loss of ~5,
    # so 1e-5 relative as in test_cross_entropy.py's fp32 test. The wrong divisor is off by 0.1 * 20 / 203 = 1e-2.
    for a, r in zip(ours, ref):
        assert_close_scaled(a, r, 1e-5)
    # the offset changes nothing: the same loss as without it, in float64
    logits = h.double() @ w.double().t() + (b.double() - 20.0)
    want = F.cross_entropy(logits, labels, label_smoothing=0.1)
    assert abs(ours[0].item() - want.item()) <= 1e-5 * want.item()


def test_autocast_runs_the_gemms_in_the_autocast_dtype(device):
    # Under bf16 autocast an fp32 model's logits chunk must be computed (and held) in bf16, as F.linear's would:
    # taking the parameters' fp32 instead doubles the chunk's memory and slows its GEMMs, and test_cross_entropy's
    # autocast test cannot tell (fp32 is more accurate, so inside its bounds). On the same bf16-rounded inputs
    # without autocast the op takes the same path (bf16 GEMMs, the same kernel): the loss bit for bit, and
    # d hidden, whose bf16 GEMM result autocast stores in fp32, exactly.
    g = torch.Generator().manual_seed(15)
    h = torch.randn(37, 67, generator=g).to(device)
    w = (0.4 * torch.randn(203, 67, generator=g)).to(device)
    labels = torch.randint(0, 203, (37,), generator=g).to(device)
    fused = lambda a, b: fused_linear_cross_entropy(a, b, labels, chunk_size=16, impl="triton")
    with torch.autocast(device, dtype=torch.bfloat16):
        loss, dh, _ = _grads(fused, (h, w), [torch.tensor(1.0, device=device)])
    loss_b, dh_b, _ = _grads(fused, (h.bfloat16(), w.bfloat16()), [torch.tensor(1.0, device=device)])
    assert dh.dtype == torch.float32 and dh_b.dtype == torch.bfloat16
    assert torch.equal(loss, loss_b)
    assert torch.equal(dh, dh_b.float())
