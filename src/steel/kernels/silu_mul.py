"""silu(gate) * up, the gate of SwiGLU and of both SENet layers: Triton forward/backward + reference.

One elementwise pass instead of three (silu, mul and their saved intermediates); math in fp32 with a
single rounding to the output dtype.
"""

from __future__ import annotations

import torch

from steel.kernels.dispatch import HAS_TRITON, launch_device, use_triton

BLOCK = 1024  # elements per program: 4 warps x 32 threads x 8 elements

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _silu_mul_fwd_kernel(G, U, Y, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        g = tl.load(G + offs, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(U + offs, mask=mask, other=0.0).to(tl.float32)
        y = g * tl.sigmoid(g) * u
        tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=mask)

    @triton.jit
    def _silu_mul_bwd_kernel(DY, G, U, DG, DU, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        dy = tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(G + offs, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(U + offs, mask=mask, other=0.0).to(tl.float32)
        sig = tl.sigmoid(g)
        silu = g * sig
        # d silu(g)/dg = sig * (1 + g * (1 - sig))
        tl.store(DG + offs, (dy * u * sig * (1.0 + g * (1.0 - sig))).to(DG.dtype.element_ty), mask=mask)
        tl.store(DU + offs, (dy * silu).to(DU.dtype.element_ty), mask=mask)


@torch.library.custom_op("steel::silu_mul_fwd", mutates_args=())
def _silu_mul_fwd(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    g, u = gate.contiguous(), up.contiguous()
    y = torch.empty(g.shape, dtype=torch.promote_types(g.dtype, u.dtype), device=g.device)
    n = g.numel()
    with launch_device(g):
        _silu_mul_fwd_kernel[(triton.cdiv(n, BLOCK),)](g, u, y, n, BLOCK=BLOCK, num_warps=4)
    return y


@_silu_mul_fwd.register_fake
def _(gate, up):
    return gate.new_empty(gate.shape, dtype=torch.promote_types(gate.dtype, up.dtype))  # contiguous


@torch.library.custom_op("steel::silu_mul_bwd", mutates_args=())
def _silu_mul_bwd(
    dy: torch.Tensor, gate: torch.Tensor, up: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    dy, g, u = dy.contiguous(), gate.contiguous(), up.contiguous()
    dg, du = torch.empty_like(g), torch.empty_like(u)
    n = g.numel()
    with launch_device(g):
        _silu_mul_bwd_kernel[(triton.cdiv(n, BLOCK),)](dy, g, u, dg, du, n, BLOCK=BLOCK, num_warps=4)
    return dg, du


@_silu_mul_bwd.register_fake
def _(dy, gate, up):
    return gate.new_empty(gate.shape), up.new_empty(up.shape)  # contiguous, as the real op returns


def _silu_mul_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _silu_mul_backward(ctx, dy):
    gate, up = ctx.saved_tensors
    return torch.ops.steel.silu_mul_bwd(dy, gate, up)


_silu_mul_fwd.register_autograd(_silu_mul_backward, setup_context=_silu_mul_setup)


def silu_mul_ref(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Pure torch `silu(gate) * up` (HF's `act_fn(gate_proj(x)) * up_proj(x)`); also the CPU fallback."""
    return torch.nn.functional.silu(gate) * up


def silu_mul(gate: torch.Tensor, up: torch.Tensor, *, impl: str = "auto") -> torch.Tensor:
    """silu(gate) * up for two tensors of the same shape (any shape)."""
    if gate.shape != up.shape:
        raise ValueError(f"silu_mul: gate {tuple(gate.shape)} and up {tuple(up.shape)} differ in shape")
    if not use_triton(gate, impl):
        return silu_mul_ref(gate, up)
    return torch.ops.steel.silu_mul_fwd(gate, up)
