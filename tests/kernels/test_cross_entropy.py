"""Fused linear + cross-entropy: loss and the gradients wrt hidden, weight and bias vs F.cross_entropy
on the full logits, with ignore_index and label smoothing off/on, in several token chunks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tolerances import assert_close_scaled, bf16_rounding

import steel
from steel.kernels import fused_linear_cross_entropy, fused_linear_cross_entropy_ref

SRC = str(Path(steel.__file__).resolve().parents[1])

N, C, V = 37, 67, 203  # odd everything; V=203 -> one 256-wide vocabulary tile with a masked tail


def _inputs(device, dtype, bias=False):
    g = torch.Generator().manual_seed(3)
    h = torch.randn(N, C, generator=g)
    w = torch.randn(V, C, generator=g) * 0.4  # logits of a few units, as in a trained LM head
    b = torch.randn(V, generator=g) if bias else None
    labels = torch.randint(0, V, (N,), generator=g)
    labels[::4] = -100  # 10 of 37 ignored (the first and last rows among them)
    labels[-1] = -100
    to = lambda t: None if t is None else t.to(device, dtype)
    return to(h), to(w), to(b), labels.to(device)


def _run(fn, h, w, b, labels, scale=1.0, **kw):
    leaves = [t.detach().requires_grad_() for t in (h, w, b) if t is not None]
    loss = fn(leaves[0], leaves[1], labels, bias=leaves[2] if b is not None else None, **kw)
    # NOTE: a non-unit upstream gradient checks that the backward scales the precomputed gradients.
    return (loss, *torch.autograd.grad(loss * scale, leaves))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [16, None])  # 3 chunks (16, 16, 5) and the default (one chunk here)
def test_fp32_matches_reference(device, smoothing, chunk):
    h, w, b, labels = _inputs(device, torch.float32, bias=True)
    fused = lambda *a, **k: fused_linear_cross_entropy(*a, chunk_size=chunk, impl="triton", **k)
    ours = _run(fused, h, w, b, labels, scale=2.5, label_smoothing=smoothing)
    ref = _run(fused_linear_cross_entropy_ref, h, w, b, labels, scale=2.5, label_smoothing=smoothing)
    for a, r in zip(ours, ref):
        # NOTE: fp32 everywhere; the online log-sum-exp and the GEMMs sum in another order than torch:
        # a few ulps over sums of <= 203 terms; 1e-5 of the largest entry is ~80 ulps.
        assert_close_scaled(a, r, 1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_bf16_against_fp32_reference(device, smoothing):
    h, w, b, labels = _inputs(device, torch.bfloat16)
    ours = _run(
        lambda *a, **k: fused_linear_cross_entropy(*a, chunk_size=16, impl="triton", **k),
        h,
        w,
        b,
        labels,
        label_smoothing=smoothing,
    )
    assert ours[0].dtype == torch.float32 and ours[1].dtype == ours[2].dtype == torch.bfloat16
    hf, wf = h.float(), w.float()
    ref = _run(fused_linear_cross_entropy_ref, hf, wf, None, labels, label_smoothing=smoothing)
    # 3 chunks: a bf16 weight accumulates its gradient in bf16, rounding the running sum 3 times.
    bound_loss, bound_dh, bound_dw = _bf16_error_bounds(hf, wf, labels, bf16_rounding(device), dw_roundings=3)
    assert abs(ours[0].item() - ref[0].item()) <= bound_loss
    assert ((ours[1].float() - ref[1]).abs() <= bound_dh).all()
    assert ((ours[2].float() - ref[2]).abs() <= bound_dw).all()


def _bf16_error_bounds(h, w, labels, r, dw_roundings=1):
    """First-order error bounds of the bf16 fused op vs the fp32 reference, from the fp32 values.

    Each bf16 logit x_j carries one rounding, |dx_j| <= r |x_j|. Then:
    - loss = lse - x_y moves by sum_j p_j dx_j - dx_y: <= r (E_p|x| + |x_y|) per row, averaged;
    - g_j = (p_j - onehot_j) / n moves by p_j (dx_j - E_p dx) <= p_j r (|x_j| + E_p|x|), and its bf16
      storage adds r |g_j|;
    - dh = g @ W, dW = g^T @ h add up those errors (|dg| @ |W|) and round once more (r |g| @ |W|);
      dW's running sum over chunks may be rounded once per chunk (`dw_roundings`).
    Smoothing only adds constants to g: the bound is the same.
    """
    x = h @ w.t()  # (N, V)
    p = torch.softmax(x, -1)
    valid = (labels != -100)[:, None].float()
    n = valid.sum()
    onehot = torch.nn.functional.one_hot(labels.clamp(min=0), V).float()
    ep = (p * x.abs()).sum(-1, keepdim=True)  # E_p|x|, (N, 1)
    x_y = (onehot * x.abs()).sum(-1, keepdim=True)
    bound_loss = (r * (ep + x_y) * valid).sum() / n
    g_abs = (p + onehot) * valid / n
    dg = (p * r * (x.abs() + ep) * valid / n) + r * g_abs
    return (
        bound_loss.item(),
        dg @ w.abs() + r * g_abs @ w.abs(),
        dg.t() @ h.abs() + dw_roundings * r * g_abs.t() @ h.abs(),
    )


def test_autocast_with_fp32_master_weights(device):
    # The training setting: fp32 parameters, bf16 autocast. The GEMMs run in bf16 like F.linear's
    # would, and the weight gradient comes back fp32 (accumulated over chunks in fp32).
    h, w, b, labels = _inputs(device, torch.float32)
    with torch.autocast(device, dtype=torch.bfloat16):
        ours = _run(
            lambda *a, **k: fused_linear_cross_entropy(*a, chunk_size=16, impl="triton", **k), h, w, b, labels
        )
        ref = _run(fused_linear_cross_entropy_ref, h, w, b, labels)
    assert ours[1].dtype == ours[2].dtype == torch.float32
    # Both sides compute on the same bf16-rounded h and W; each side is within the bounds of the bf16
    # test of the exact result on those values (torch's side: bf16 logits and bf16 gradient GEMMs,
    # the same kinds of roundings), so they are within twice those bounds of each other.
    hb, wb = h.bfloat16().float(), w.bfloat16().float()
    bound_loss, bound_dh, bound_dw = _bf16_error_bounds(hb, wb, labels, bf16_rounding(device))
    assert abs(ours[0].item() - ref[0].item()) <= 2 * bound_loss
    assert ((ours[1] - ref[1]).abs() <= 2 * bound_dh).all()
    assert ((ours[2] - ref[2]).abs() <= 2 * bound_dw).all()


@pytest.mark.parametrize("all_ignored", [False, True])
def test_sum_reduction(device, all_ignored):
    # What a trainer accumulating micro-batches wants; a micro-batch with no target gives 0, not NaN.
    h, w, b, labels = _inputs(device, torch.float32, bias=True)
    if all_ignored:
        labels = torch.full_like(labels, -100)
    fused = lambda *a, **k: fused_linear_cross_entropy(*a, chunk_size=16, impl="triton", **k)
    ours = _run(fused, h, w, b, labels, scale=0.5, reduction="sum")
    ref = _run(fused_linear_cross_entropy_ref, h, w, b, labels, scale=0.5, reduction="sum")
    for a, r in zip(ours, ref):
        if all_ignored:
            assert torch.equal(a, torch.zeros_like(a))
        else:
            assert_close_scaled(a, r, 1e-5)  # fp32, as in the mean test


def test_no_grad_gives_the_same_loss(device):
    h, w, _, labels = _inputs(device, torch.float32)
    with torch.no_grad():
        loss = fused_linear_cross_entropy(h, w, labels, impl="triton")
    assert_close_scaled(loss, fused_linear_cross_entropy_ref(h, w, labels), 1e-6)  # fp32, see above


def test_compile_matches_eager(device):
    h, w, b, labels = _inputs(device, torch.float32, bias=True)
    fn = lambda *a, **k: fused_linear_cross_entropy(*a, chunk_size=16, impl="triton", **k)
    eager = _run(fn, h, w, b, labels, label_smoothing=0.1)
    compiled = _run(torch.compile(fn, backend="aot_eager", fullgraph=True), h, w, b, labels, label_smoothing=0.1)
    for a, r in zip(eager, compiled):
        assert torch.equal(a, r)  # same kernels and GEMMs on the same inputs: bit-identical


# One past the vocabulary, in a child process (argv[1]: the device).
OUT_OF_RANGE_CHILD = r"""
import sys, torch
from steel.kernels import fused_linear_cross_entropy
h, w = torch.randn(4, 8, device=sys.argv[1]), torch.randn(5, 8, device=sys.argv[1])
loss = fused_linear_cross_entropy(h, w, torch.tensor([0, 5, 1, -100], device=sys.argv[1]), impl="triton")
print("LOSS", loss.item())  # .item() waits for the GPU: a device-side assert is raised here at the latest
"""


def test_out_of_range_label_is_an_error(device):
    # NOTE: on CUDA the check is a device-side assert (no host sync), which leaves the CUDA context of its
    # process unusable: run in the pytest process, every later GPU test of `make gpu-test` failed with
    # "device-side assert triggered" (and this one too: that message does not name the label).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (SRC, os.environ.get("PYTHONPATH"))))}
    proc = subprocess.run([sys.executable, "-c", OUT_OF_RANGE_CHILD, device], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    out = proc.stdout + proc.stderr  # a device-side assert's message is printed by the GPU
    assert proc.returncode != 0 and "LOSS" not in proc.stdout, out[-2000:]
    assert "a label is outside [0, vocab_size)" in out or (device == "cuda" and "device-side assert" in out), (
        out[-2000:]
    )


def test_shape_errors():
    with pytest.raises(ValueError, match=r"labels \(5,\) != \(4,\)"):
        fused_linear_cross_entropy(torch.randn(4, 3), torch.randn(7, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="hidden"):
        fused_linear_cross_entropy(torch.randn(4, 3), torch.randn(7, 2), torch.zeros(4, dtype=torch.long))
    for chunk in (0, -1):  # -1 processed no chunk and returned uninitialised loss and gradients
        with pytest.raises(ValueError, match=f"chunk_size must be >= 1, got {chunk}"):
            fused_linear_cross_entropy(
                torch.randn(4, 3), torch.randn(7, 3), torch.zeros(4, dtype=torch.long), chunk_size=chunk
            )


def test_double_backward_is_an_error_not_zeros(device):
    # The gradients come from the forward and hold no graph to hidden/weight: differentiating them again
    # silently gave zeros. create_graph=True alone (first order) must still give the right gradients.
    h, w, b, labels = _inputs(device, torch.float32, bias=True)
    h, w, b = (t.detach().requires_grad_() for t in (h, w, b))
    loss = fused_linear_cross_entropy(h, w, labels, bias=b, chunk_size=16, impl="triton")
    grads = torch.autograd.grad(loss, (h, w, b), create_graph=True)
    plain = _run(lambda *a, **k: fused_linear_cross_entropy(*a, chunk_size=16, impl="triton", **k), h, w, b, labels)
    for a, r in zip(grads, plain[1:]):
        assert torch.equal(a, r)  # same kernels and GEMMs, the graph only recorded: bit-identical
    with pytest.raises(RuntimeError, match="no double backward"):
        torch.autograd.grad((grads[0] ** 2).sum(), w)
