"""RMSNorm's eps sits inside the square root: y = w * x / sqrt(mean(x^2) + eps).

The other RMSNorm tests draw x ~ N(0, 4), where mean(x^2) ~ 4 dwarfs eps = 1e-6: eps moved outside the root
(x / (sqrt(mean(x^2)) + eps), a common slip) changed the outputs by ~5e-7 relative, inside their fp32
tolerances, and went unnoticed in the reference, the kernel and the model's op alike. Here rows are small
(mean(x^2) of the order of eps, as in a freshly initialised residual stream or a near-dead channel group), where
the two placements differ by tens of percent; the references are compared with the formula in float64.
"""

from __future__ import annotations

import pytest
import torch
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

from steel.kernels import rms_norm, rms_norm_ref
from steel.model import modeling_steel

EPS = 1e-6


def _small_rows():
    g = torch.Generator().manual_seed(0)
    # Per-row scales 1e-4 .. 1e-2: mean(x^2) from 1e-8 (eps dominates) to 1e-4 (eps a 1% term).
    scale = torch.logspace(-4, -2, 7)[:, None]
    x = torch.randn(7, 67, generator=g) * scale  # 67: odd width, masked tail in the kernel's block
    w = 1.0 + 0.5 * torch.randn(67, generator=g)
    return x, w


def _formula(x, w):
    x64 = x.double()
    return (w.double() * x64 / torch.sqrt(x64.pow(2).mean(-1, keepdim=True) + EPS)).float()


@pytest.mark.parametrize("name", ["kernels.rms_norm_ref", "kernels.rms_norm(auto, cpu)", "model.rms_norm"])
def test_eps_inside_the_root_on_small_rows(name):
    # (The Triton kernel on small rows: tests/kernels/test_s12h5_kernel_semantics.py, against HF.)
    x, w = _small_rows()
    if name == "kernels.rms_norm_ref":
        y = rms_norm_ref(x, w, EPS)
    elif name == "kernels.rms_norm(auto, cpu)":
        y = rms_norm(x, w, EPS)  # the CPU fallback a `kernels: all` config runs on CPU
    else:
        y = modeling_steel.rms_norm(x, w, EPS)
    # NOTE: fp32 against a float64 formula: a few fp32 ulps (1e-7) of rounding in the sum and the rsqrt;
    # 1e-5 relative leaves room for it and is far below the >10% an eps outside the root costs here.
    torch.testing.assert_close(y, _formula(x, w), rtol=1e-5, atol=0)


def test_model_rms_norm_bf16_is_bit_identical_to_qwen2():
    """The weight multiplies the row after its cast back to the input dtype (Qwen2RMSNorm's order). Applied
    before the cast, `(w * x32).to(bf16)`, fp32 models see no difference, but bf16 checkpoints read with bf16
    weights get other roundings than the stock model (and the HF export)."""
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(4, 9, 96, generator=g) * 3).to(torch.bfloat16)
    w = (1.0 + 0.5 * torch.randn(96, generator=g)).to(torch.bfloat16)
    hf = Qwen2RMSNorm(96, eps=EPS).to(torch.bfloat16)
    hf.weight.data.copy_(w)
    # Same ops in the same order: bit-identical, no tolerance.
    assert torch.equal(modeling_steel.rms_norm(x, w, EPS), hf(x))
    assert torch.equal(rms_norm_ref(x, w, EPS), hf(x))
