"""silu(gate) * up kernel: forward and both gradients vs the torch reference."""

from __future__ import annotations

import pytest
import torch
from tolerances import assert_close_scaled, bf16_rounding

from steel.kernels import silu_mul, silu_mul_ref


def _inputs(device, dtype):
    g = torch.Generator().manual_seed(2)
    gate = torch.randn(3, 37, 67, generator=g) * 3.0  # 7437 elements: not a multiple of the 1024 block
    up = torch.randn(3, 37, 67, generator=g)
    dy = torch.randn(3, 37, 67, generator=g)
    return gate.to(device, dtype), up.to(device, dtype), dy.to(device, dtype)


def _run(fn, gate, up, dy):
    gate, up = gate.detach().requires_grad_(), up.detach().requires_grad_()
    y = fn(gate, up)
    return (y, *torch.autograd.grad(y, (gate, up), dy))


def test_fp32_matches_reference(device):
    gate, up, dy = _inputs(device, torch.float32)
    ours = _run(lambda g, u: silu_mul(g, u, impl="triton"), gate, up, dy)
    ref = _run(silu_mul_ref, gate, up, dy)
    for a, b in zip(ours, ref):
        # NOTE: the same few fp32 ops in a different order (and exp vs torch's sigmoid): a few ulps of
        # the values, which are at most ~|gate|*|up|; 2e-6 relative is ~16 fp32 ulps.
        assert_close_scaled(a, b, 2e-6)


def test_bf16_against_fp32_reference(device):
    gate, up, dy = _inputs(device, torch.bfloat16)
    ours = _run(lambda g, u: silu_mul(g, u, impl="triton"), gate, up, dy)
    assert all(t.dtype == torch.bfloat16 for t in ours)
    ref = _run(silu_mul_ref, gate.float(), up.float(), dy.float())
    # NOTE: fp32 math on the same bf16 inputs, one rounding at the store.
    for a, b in zip(ours, ref):
        assert_close_scaled(a, b, bf16_rounding(device))


def test_compile_matches_eager(device):
    gate, up, dy = _inputs(device, torch.float32)
    fn = lambda g, u: silu_mul(g, u, impl="triton")
    eager = _run(fn, gate, up, dy)
    compiled = _run(torch.compile(fn, backend="aot_eager", fullgraph=True), gate, up, dy)
    for a, b in zip(eager, compiled):
        assert torch.equal(a, b)  # same kernel, same inputs: bit-identical


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"gate \(2, 3\) and up \(2, 4\)"):
        silu_mul(torch.randn(2, 3), torch.randn(2, 4))
