"""RoPE's Triton kernel indexes q and k with int32 offsets; its launcher must refuse any tensor whose elements
reach 2^31 from its data pointer, not only one with 2^31 elements: a q sliced out of a fused qkv projection
(stride along T of 3 x H x D) reaches three times past its own numel. Meta tensors: no memory is needed to
build such a layout, and the launcher refuses before any launch."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from steel.kernels import rope  # noqa: E402


def qkv_views(B: int, T: int, H: int, D: int):
    """q and k as views of a fused (B, T, 3*H*D) projection, (B, H, T, D) as attention makes them."""
    qkv = torch.empty(B, T, 3 * H * D, device="meta", dtype=torch.bfloat16)
    q = qkv[..., : H * D].view(B, T, H, D).transpose(1, 2)
    k = qkv[..., H * D : 2 * H * D].view(B, T, H, D).transpose(1, 2)
    cos = torch.empty(1, T, D, device="meta", dtype=torch.bfloat16)
    return q, k, cos


def test_a_view_reaching_past_int32_is_refused_though_its_numel_fits():
    # qkv has 3 * 2^30 elements and q, k 2^30 each; but rows of q are 3*H*D apart, so q's last element lies
    # ~3 * 2^30 elements past q's own pointer.
    B, T, H, D = 8, 2**14, 32, 256
    q, k, cos = qkv_views(B, T, H, D)
    assert q.numel() < 2**31 and k.numel() < 2**31
    far = sum((n - 1) * st for n, st in zip(q.shape, q.stride()))
    assert far >= 2**31  # the kernel's int32 offset of q's last element would wrap
    with pytest.raises(ValueError, match="int32 offsets"):
        rope._rope._init_fn(q, k, cos, cos, False)


def test_the_largest_layout_that_fits_is_not_refused_by_the_check():
    # One element short of 2^31 from the pointer: the check lets it through (it then fails at the launch on
    # meta tensors, which have no data: any error but the int32 refusal).
    T, D = 2**15, 2
    q = torch.empty_strided((1, 1, T, D), (0, 0, 2**16, 1), device="meta", dtype=torch.bfloat16)
    assert sum((n - 1) * st for n, st in zip(q.shape, q.stride())) == 2**31 - 2**16 + 1
    cos = torch.empty(1, T, D, device="meta", dtype=torch.bfloat16)
    with pytest.raises(Exception) as info:
        rope._rope._init_fn(q, q, cos, cos, False)
    assert "int32 offsets" not in str(info.value)
