"""torch.library.opcheck of every steel custom op in bf16, with fp32 weights / cos, sin (what autocast and
mixed-precision training pass them), on odd shapes and non-contiguous inputs: the fake (meta) outputs must
match the real ones in shape, dtype and strides, or torch.compile traces a graph with the wrong types.
test_dispatch.py::test_custom_ops_pass_opcheck covers fp32."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("other", [torch.bfloat16, torch.float32], ids=["bf16", "bf16+fp32"])
def test_custom_ops_pass_opcheck_in_bf16(device, other):
    bf16 = torch.bfloat16
    g = torch.Generator().manual_seed(7)

    def r(*shape, dtype):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    x = r(3, 5, 13, dtype=bf16).transpose(0, 1).requires_grad_()  # odd width, non-contiguous
    w = r(13, dtype=other).requires_grad_()
    q = r(2, 7, 3, 10, dtype=bf16).transpose(1, 2).requires_grad_()  # (B, H, T, D) from a (B, T, H, D) view
    k = r(2, 1, 7, 10, dtype=bf16).requires_grad_()
    cos, sin = r(2, 7, 10, dtype=other), r(2, 7, 10, dtype=other)
    cos1, sin1 = r(1, 7, 10, dtype=other).requires_grad_(), r(1, 7, 10, dtype=other).requires_grad_()
    h, wh, b = r(9, 13, dtype=bf16).requires_grad_(), r(11, 13, dtype=other).requires_grad_(), r(11, dtype=other)
    labels = torch.tensor([1, -100, 3, 0, 2, 10, 4, -100, 5], device=device)
    y, rstd = torch.ops.steel.rms_norm_fwd(x, w, 1e-6)
    cases = [
        (torch.ops.steel.rms_norm_fwd, (x, w, 1e-6)),
        (torch.ops.steel.rms_norm_bwd, (torch.ones_like(y), x.detach(), w.detach(), rstd.detach())),
        (torch.ops.steel.rope, (q, k, cos, sin, False)),
        (torch.ops.steel.rope, (q, k, cos1, sin1, True)),  # gradients wrt cos/sin, the transposed rotation
        (torch.ops.steel.silu_mul_fwd, (x, (x.detach() + 1).to(other))),
        (torch.ops.steel.silu_mul_bwd, (x.detach(), x.detach(), x.detach())),
        (torch.ops.steel.fused_linear_ce_fwd, (h, wh, labels, b.requires_grad_(), -100, 0.1, bf16, 4, True, False)),
        (torch.ops.steel.fused_linear_ce_fwd, (h.detach(), wh.detach(), labels, None, -100, 0.0, bf16, 5, False, True)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)
