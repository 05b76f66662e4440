"""Cross-entropy with an ignore_index other than -100 (SFT collators and HF models pass their own).

tests/kernels/test_cross_entropy.py uses -100 only, so a reference or kernel that ignored `ignore_index`
and always skipped -100 passed it. Here the ignored value is a valid class id (5), the case where the
slip is silent (the rows are counted, not rejected), and -1; the loss is checked against the explicit
per-row formula mean_{rows r kept} (logsumexp(z_r) - z_r[y_r]), the gradient of hidden against autograd of it.
"""

from __future__ import annotations

import pytest
import torch
from tolerances import assert_close_scaled

from steel.kernels import fused_linear_cross_entropy, fused_linear_cross_entropy_ref

N, C, V = 23, 19, 41


def _explicit(h, w, labels, ignore_index, reduction):
    z = (h.double() @ w.double().t())  # (N, V)
    keep = labels != ignore_index
    rows = torch.logsumexp(z[keep], dim=-1) - z[keep].gather(1, labels[keep, None]).squeeze(1)
    return rows.sum() / (keep.sum() if reduction == "mean" else 1)


CASES = [("torch", 5, "mean"), ("torch", 5, "sum"), ("torch", -1, "mean"), ("torch", -1, "sum"),
         ("triton", 5, "mean")]  # (the kernel once: its interpreter run is the slow part)


@pytest.mark.parametrize(("impl", "ignore_index", "reduction"), CASES)
def test_custom_ignore_index(impl, ignore_index, reduction):
    g = torch.Generator().manual_seed(4)
    h = torch.randn(N, C, generator=g, requires_grad=True)
    w = torch.randn(V, C, generator=g) * 0.4
    labels = torch.randint(6, V, (N,), generator=g)  # real targets never equal 5
    labels[::3] = ignore_index  # 8 of 23 rows ignored
    fn = fused_linear_cross_entropy_ref if impl == "torch" else fused_linear_cross_entropy
    kw = {} if impl == "torch" else {"impl": "triton", "chunk_size": 8}
    loss = fn(h, w, labels, ignore_index=ignore_index, reduction=reduction, **kw)
    (dh,) = torch.autograd.grad(loss, h)
    h64 = h.detach().double().requires_grad_()
    want = _explicit(h64, w, labels, ignore_index, reduction)
    (dh_want,) = torch.autograd.grad(want, h64)
    # NOTE: fp32 against float64: a few fp32 ulps over sums of <= 41 terms; 1e-5 of the largest entry is
    # ~80 ulps, while counting the ignored rows changes the loss by tens of percent.
    assert_close_scaled(loss.reshape(1), want.reshape(1), 1e-5)
    assert_close_scaled(dh, dh_want, 1e-5)
    assert dh[labels == ignore_index].abs().max().item() == 0.0


def test_label_smoothing_above_one_is_refused_before_the_kernel():
    # F.cross_entropy (the reference) refuses it itself; the Triton path computed a loss with a negative
    # weight on the target, silently, had the wrapper's own bound gone.
    h, w, labels = torch.randn(4, C), torch.randn(V, C), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="label_smoothing must be in \\[0, 1\\], got 1.5"):
        fused_linear_cross_entropy(h, w, labels, label_smoothing=1.5, impl="triton")
