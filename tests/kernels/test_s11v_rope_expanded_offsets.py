"""RoPE's launcher refuses an expanded q (stride 0) whose output would overflow the kernel's int32 offsets.

b096d64 made the guard measure how far q and k reach from their data pointers (a view of a fused qkv projection
reaches past its numel) instead of their numel. An expanded q reaches less far than its numel, but the kernel
writes a contiguous output of q's shape with the same int32 offsets: a q expanded past 2^31 elements passed the
guard and its output's offsets wrapped. Meta tensors: no memory, the launcher refuses before any launch.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from steel.kernels import rope  # noqa: E402


def test_an_expanded_q_whose_output_reaches_int32_is_refused():
    B, H, T, D = 2**11 + 1, 16, 1024, 64  # 2^31 + 2^20 elements, every one read from the same row of 64
    q = torch.empty(1, 1, 1, D, device="meta", dtype=torch.bfloat16).expand(B, H, T, D)
    k = torch.empty(1, 1, T, D, device="meta", dtype=torch.bfloat16)
    cos = torch.empty(1, T, D, device="meta", dtype=torch.bfloat16)
    assert q.numel() - 1 >= 2**31 and sum((n - 1) * st for n, st in zip(q.shape, q.stride())) == D - 1
    with pytest.raises(ValueError, match=r"rope: q \(2049, 16, 1024, 64\) .*int32 offsets"):
        rope._rope._init_fn(q, k, cos, cos, False)


def test_an_expanded_q_just_short_of_int32_is_not_refused_by_the_check():
    # numel 2^31 - 2: its output's last offset (2^31 - 3) fits; the launch then fails on meta tensors (any error
    # but the int32 refusal).
    T = 2**30 - 1
    q = torch.empty(1, 1, 1, 2, device="meta", dtype=torch.bfloat16).expand(1, 1, T, 2)
    cos = torch.empty(1, T, 2, device="meta", dtype=torch.bfloat16)
    assert q.numel() == 2**31 - 2
    with pytest.raises(Exception) as info:
        rope._rope._init_fn(q, q, cos, cos, False)
    assert "int32 offsets" not in str(info.value)
