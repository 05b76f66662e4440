"""RMSNorm: Triton forward + backward, registered as a torch custom op, and the torch reference.

Semantics are exactly HF `Qwen2RMSNorm.forward` (transformers `modeling_qwen2.py`):
    h = x.float(); h = h * rsqrt(mean(h^2) + eps); y = weight * h.to(x.dtype)
so the normalised value is rounded to the input dtype BEFORE the weight multiply, and the output dtype
is the promotion of x and weight (fp32 weight + bf16 x under autocast gives fp32, as in HF).
"""

from __future__ import annotations

import torch
from torch import nn

from steel.kernels.dispatch import HAS_TRITON, launch_device, num_programs, num_warps_for, use_triton

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _rms_norm_fwd_kernel(X, W, Y, RSTD, stride_x, stride_y, C, eps, BLOCK_C: tl.constexpr):
        # One program per row of x (M, C).
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK_C)
        mask = cols < C
        x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0)
        x32 = x.to(tl.float32)
        # NOTE: fp32 sum of squares, as HF's `hidden_states.to(float32).pow(2).mean(-1)`.
        rstd = tl.math.rsqrt(tl.sum(x32 * x32, axis=0) / C + eps)
        n = (x32 * rstd).to(x.dtype).to(tl.float32)  # HF rounds to the input dtype before the weight
        w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(Y + row * stride_y + cols, (w * n).to(Y.dtype.element_ty), mask=mask)
        tl.store(RSTD + row, rstd)

    @triton.jit
    def _rms_norm_bwd_kernel(
        DY, X, W, RSTD, DX, DW_PART, stride_dy, stride_x, stride_dx, M, C, rows_per_program,
        BLOCK_C: tl.constexpr,
    ):
        # Persistent grid: program p handles rows [p*rows_per_program, ...) and writes its partial
        # weight gradient to DW_PART[p]; the host sums the (P, C) partials (fp32) afterwards.
        pid = tl.program_id(0)
        cols = tl.arange(0, BLOCK_C)
        mask = cols < C
        w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
        dw = tl.zeros((BLOCK_C,), dtype=tl.float32)
        # int64 bounds make `row` int64 (compiled) or a Python int (interpreter): row * stride may pass 2**31
        # (a strided dy, a long batch), which int32 offsets wrapped.
        row_start = pid.to(tl.int64) * rows_per_program
        row_end = tl.minimum(row_start + rows_per_program, M)
        for row in range(row_start, row_end):
            row64 = row
            x = tl.load(X + row64 * stride_x + cols, mask=mask, other=0.0)
            x32 = x.to(tl.float32)
            dy = tl.load(DY + row64 * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
            rstd = tl.load(RSTD + row64)
            n = x32 * rstd
            dw += dy * n.to(x.dtype).to(tl.float32)
            # d/dx of x*rstd(x): rstd * (dn - n * mean(dn * n)); the cast to x.dtype is straight-through.
            dn = dy * w
            dx = rstd * (dn - n * (tl.sum(dn * n, axis=0) / C))
            tl.store(DX + row64 * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=mask)
        tl.store(DW_PART + pid * C + cols, dw, mask=mask)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(..., C) -> (M, C) with unit stride along C (copies only when needed)."""
    x2 = x.reshape(-1, x.shape[-1])
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


@torch.library.custom_op("steel::rms_norm_fwd", mutates_args=())
def _rms_norm_fwd(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    C = x.shape[-1]
    x2 = _rows(x)  # (M, C)
    M = x2.shape[0]
    y = torch.empty((M, C), dtype=torch.promote_types(x.dtype, weight.dtype), device=x.device)
    rstd = torch.empty((M,), dtype=torch.float32, device=x.device)
    block = triton.next_power_of_2(C)
    with launch_device(x):
        _rms_norm_fwd_kernel[(M,)](
            x2, weight.contiguous(), y, rstd, x2.stride(0), y.stride(0), C, eps,
            BLOCK_C=block, num_warps=num_warps_for(block),
        )
    return y.view(*x.shape[:-1], C), rstd


@_rms_norm_fwd.register_fake
def _(x, weight, eps):
    y = x.new_empty(x.shape, dtype=torch.promote_types(x.dtype, weight.dtype))
    return y, x.new_empty((x.numel() // x.shape[-1],), dtype=torch.float32)


@torch.library.custom_op("steel::rms_norm_bwd", mutates_args=())
def _rms_norm_bwd(
    dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    C = x.shape[-1]
    x2, dy2 = _rows(x), _rows(dy)
    M = x2.shape[0]
    dx = torch.empty((M, C), dtype=x.dtype, device=x.device)
    programs = num_programs(x.device, M)
    dw_part = torch.empty((programs, C), dtype=torch.float32, device=x.device)
    block = triton.next_power_of_2(C)
    with launch_device(x):
        _rms_norm_bwd_kernel[(programs,)](
            dy2, x2, weight.contiguous(), rstd, dx, dw_part, dy2.stride(0), x2.stride(0), dx.stride(0),
            M, C, triton.cdiv(M, programs), BLOCK_C=block, num_warps=num_warps_for(block),
        )
    return dx.view(x.shape), dw_part.sum(0).to(weight.dtype)


@_rms_norm_bwd.register_fake
def _(dy, x, weight, rstd):
    return x.new_empty(x.shape), weight.new_empty(weight.shape)  # contiguous, as the real op returns


def _rms_norm_setup(ctx, inputs, output):
    x, weight, _ = inputs
    ctx.save_for_backward(x, weight, output[1])


def _rms_norm_backward(ctx, dy, _drstd):
    x, weight, rstd = ctx.saved_tensors
    dx, dw = torch.ops.steel.rms_norm_bwd(dy, x, weight, rstd)
    return dx, dw, None


_rms_norm_fwd.register_autograd(_rms_norm_backward, setup_context=_rms_norm_setup)


def rms_norm_ref(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Pure-torch RMSNorm, line for line HF `Qwen2RMSNorm.forward`; also the CPU fallback."""
    input_dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(input_dtype)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, *, impl: str = "auto") -> torch.Tensor:
    """RMSNorm over the last dim. x (..., C), weight (C,) -> (..., C) in promote(x.dtype, weight.dtype)."""
    if x.shape[-1] != weight.shape[0]:
        raise ValueError(f"rms_norm: x has {x.shape[-1]} features but weight has {weight.shape[0]}")
    if not use_triton(x, impl):
        return rms_norm_ref(x, weight, eps)
    return torch.ops.steel.rms_norm_fwd(x, weight, float(eps))[0]


class RMSNorm(nn.Module):
    """Drop-in for `Qwen2RMSNorm` (same parameter name `weight`, same state dict) using the fused op."""

    def __init__(self, hidden_size: int, eps: float = 1e-6, impl: str = "auto") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps
        self.impl = impl

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return rms_norm(hidden_states, self.weight, self.variance_epsilon, impl=self.impl)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}, impl={self.impl}"
