"""RMSNorm kernel: forward and both gradients vs the reference and the stock HF Qwen2RMSNorm."""

from __future__ import annotations

import pytest
import torch
from tolerances import assert_close_scaled, bf16_rounding
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

from steel.kernels import RMSNorm, rms_norm, rms_norm_ref

EPS = 1e-6


def _inputs(device, dtype, wdtype=None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 37, 67, generator=g) * 2.0  # odd row count and width (67 -> BLOCK 128, masked)
    w = 1.0 + 0.5 * torch.randn(67, generator=g)
    dy = torch.randn(3, 37, 67, generator=g)
    # dy is rounded to the test dtype too, so the fp32 reference sees exactly the same numbers.
    return x.to(device, dtype), w.to(device, wdtype or dtype), dy.to(dtype).to(device)


def _grads(fn, x, w, dy):
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    y = fn(x, w)
    dx, dw = torch.autograd.grad(y, (x, w), dy.to(y.dtype))
    return y, dx, dw


def test_fp32_matches_reference_and_hf(device):
    x, w, dy = _inputs(device, torch.float32)
    y, dx, dw = _grads(lambda a, b: rms_norm(a, b, EPS, impl="triton"), x, w, dy)
    hf = Qwen2RMSNorm(67, eps=EPS).to(device)
    hf.weight.data.copy_(w)
    xr = x.detach().requires_grad_()
    yr = hf(xr)
    dxr, dwr = torch.autograd.grad(yr, (xr, hf.weight), dy)
    # NOTE: fp32 vs fp32: only the order of the 67-term sums differs (and rsqrt's last ulp), so the
    # error is a few fp32 ulps (1.2e-7) of the largest term: 1e-6 relative leaves margin, no more.
    assert_close_scaled(y, yr, 1e-6)
    assert_close_scaled(dx, dxr, 1e-6)
    # dw sums 111 rows: 111 * 1.2e-7 ~ 1.3e-5 worst case, realistically sqrt(111) * ulp.
    assert_close_scaled(dw, dwr, 2e-6)
    assert torch.allclose(rms_norm_ref(x, w, EPS), yr)  # the reference IS the HF formula


def test_bf16_against_fp32_reference(device):
    x, w, dy = _inputs(device, torch.bfloat16)
    y, dx, dw = _grads(lambda a, b: rms_norm(a, b, EPS, impl="triton"), x, w, dy)
    assert y.dtype == dx.dtype == dw.dtype == torch.bfloat16
    yr, dxr, dwr = _grads(lambda a, b: rms_norm_ref(a, b, EPS), x.float(), w.float(), dy)
    r = bf16_rounding(device)
    # NOTE: y is rounded twice (the normalised value to bf16 as HF does, then the output): 2 roundings.
    # dx is computed in fp32 from the same inputs and rounded once.
    assert_close_scaled(y, yr, 2 * r)
    assert_close_scaled(dx, dxr, r)
    # dw = sum over rows of dy * bf16(n): each term carries one rounding of n, then the fp32 sum is
    # rounded once more: 2 roundings of the magnitude of the terms, and the sum of |terms| over 111
    # random-sign rows is a few times max|dw|; 2 roundings of 2x max|dw| covers it.
    assert_close_scaled(dw, dwr, 4 * r)


def test_bf16_input_fp32_weight_promotes_like_hf(device):
    # Under autocast HF's norm gets fp32 weights and bf16 activations and returns fp32: keep that.
    x, w, dy = _inputs(device, torch.bfloat16, torch.float32)
    y, dx, dw = _grads(lambda a, b: rms_norm(a, b, EPS, impl="triton"), x, w, dy)
    yr, dxr, dwr = _grads(lambda a, b: rms_norm_ref(a, b, EPS), x, w, dy)
    assert y.dtype == yr.dtype == torch.float32 and dx.dtype == torch.bfloat16 and dw.dtype == torch.float32
    r = bf16_rounding(device)
    # NOTE: y = w * bf16(n) as in HF, where both round n once (the interpreter truncating): <= 2 roundings
    # apart. dx: the kernel rounds once, HF rounds dy*w to bf16 first and dx at the end: 3 roundings.
    # dw: fp32 sums of dy * bf16(n); the bf16(n) may differ by the 2 roundings above.
    assert_close_scaled(y, yr, 2 * r)
    assert_close_scaled(dx, dxr, 3 * r)
    assert_close_scaled(dw, dwr, 2 * r)


def test_module_keeps_hf_state_dict(device):
    hf = Qwen2RMSNorm(67, eps=EPS)
    ours = RMSNorm(67, eps=EPS, impl="triton")
    ours.load_state_dict(hf.state_dict())
    assert list(ours.state_dict()) == ["weight"]
    x = torch.randn(5, 67).to(device)
    assert_close_scaled(ours.to(device)(x), hf.to(device)(x), 1e-6)  # fp32: see the fp32 test


def test_compile_matches_eager(device):
    x, w, dy = _inputs(device, torch.float32)
    fn = lambda a, b: rms_norm(a, b, EPS, impl="triton")
    eager = _grads(fn, x, w, dy)
    compiled = _grads(torch.compile(fn, backend="aot_eager", fullgraph=True), x, w, dy)
    for a, b in zip(eager, compiled):
        assert torch.equal(a, b)  # same kernels on the same inputs: bit-identical


def test_shape_error_names_both_sizes():
    with pytest.raises(ValueError, match="67 features but weight has 66"):
        rms_norm(torch.randn(2, 67), torch.ones(66), EPS)
