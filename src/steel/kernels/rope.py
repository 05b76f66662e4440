"""Rotary position embedding for q and k in ONE launch: Triton forward/backward + torch reference.

HF convention (`apply_rotary_pos_emb` in transformers `modeling_qwen2.py`, rotate_half, unsqueeze on
dim 1): q (B, Hq, T, D), k (B, Hk, T, D), cos/sin (B or 1, T, D):
    q_embed = q * cos + rotate_half(q) * sin,   rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2])
The kernel uses both halves of cos/sin as given (it does not assume cos[:D/2] == cos[D/2:]).
q and k may be strided views (HF's `.view(B, T, H, D).transpose(1, 2)`); no copy is made for them.
"""

from __future__ import annotations

import torch

from steel.kernels.dispatch import HAS_TRITON, launch_device, use_triton

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _rope_kernel(
        Q, K, COS, SIN, QO, KO,
        sq_b, sq_h, sq_t, sk_b, sk_h, sk_t,
        sqo_b, sqo_h, sqo_t, sko_b, sko_h, sko_t,
        sc_b, sc_t, ss_b, ss_t,
        T, HQ, HK, HALF,
        BACKWARD: tl.constexpr, BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        # One program per (b, t): all heads of q and of k at that position.
        pid = tl.program_id(0)
        b = pid // T
        t = pid % T
        d = tl.arange(0, BLOCK_D)
        dmask = d < HALF
        cos_row = COS + b * sc_b + t * sc_t
        sin_row = SIN + b * ss_b + t * ss_t
        c1 = tl.load(cos_row + d, mask=dmask, other=0.0).to(tl.float32)[None, :]
        c2 = tl.load(cos_row + HALF + d, mask=dmask, other=0.0).to(tl.float32)[None, :]
        s1 = tl.load(sin_row + d, mask=dmask, other=0.0).to(tl.float32)[None, :]
        s2 = tl.load(sin_row + HALF + d, mask=dmask, other=0.0).to(tl.float32)[None, :]
        if BACKWARD:
            # The transpose of [[c1, -s1], [s2, c2]] is [[c1, s2], [-s1, c2]]: same formula with
            # s1' = -s2 and s2' = -s1.
            tmp = s1
            s1 = -s2
            s2 = -tmp
        # NOTE: math in fp32, one rounding at the store (HF rounds q*cos and rotate_half(q)*sin separately).
        h = tl.arange(0, BLOCK_HQ)[:, None]
        m = (h < HQ) & dmask[None, :]
        src = Q + b * sq_b + t * sq_t + h * sq_h + d[None, :]
        x1 = tl.load(src, mask=m, other=0.0).to(tl.float32)
        x2 = tl.load(src + HALF, mask=m, other=0.0).to(tl.float32)
        dst = QO + b * sqo_b + t * sqo_t + h * sqo_h + d[None, :]
        tl.store(dst, (x1 * c1 - x2 * s1).to(QO.dtype.element_ty), mask=m)
        tl.store(dst + HALF, (x2 * c2 + x1 * s2).to(QO.dtype.element_ty), mask=m)

        h = tl.arange(0, BLOCK_HK)[:, None]
        m = (h < HK) & dmask[None, :]
        src = K + b * sk_b + t * sk_t + h * sk_h + d[None, :]
        x1 = tl.load(src, mask=m, other=0.0).to(tl.float32)
        x2 = tl.load(src + HALF, mask=m, other=0.0).to(tl.float32)
        dst = KO + b * sko_b + t * sko_t + h * sko_h + d[None, :]
        tl.store(dst, (x1 * c1 - x2 * s1).to(KO.dtype.element_ty), mask=m)
        tl.store(dst + HALF, (x2 * c2 + x1 * s2).to(KO.dtype.element_ty), mask=m)


def _unit_last(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


@torch.library.custom_op("steel::rope", mutates_args=())
def _rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, backward: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    B, HQ, T, D = q.shape
    HK = k.shape[1]
    q, k = _unit_last(q), _unit_last(k)
    # The kernel's offsets are int32: the farthest element of each tensor from its data pointer must fit. NOTE:
    # a view into a larger tensor (q sliced from a fused qkv projection) reaches past its own numel; an expanded
    # one (stride 0) reaches less far than its numel, but the contiguous output of its shape reaches numel - 1.
    for name, t in (("q", q), ("k", k)):
        if t.numel() and max(t.numel() - 1, sum((n - 1) * st for n, st in zip(t.shape, t.stride()))) >= 2**31:
            raise ValueError(
                f"rope: {name} {tuple(t.shape)} with strides {t.stride()} overflows the kernel's int32 offsets; "
                "split the batch"
            )
    # (1 or B, T, D) -> (B, T, D); a broadcast batch gets stride 0, no copy.
    cos, sin = _unit_last(cos.expand(B, T, D)), _unit_last(sin.expand(B, T, D))
    qo = torch.empty(q.shape, dtype=torch.promote_types(q.dtype, cos.dtype), device=q.device)
    ko = torch.empty(k.shape, dtype=torch.promote_types(k.dtype, cos.dtype), device=k.device)
    block_d = triton.next_power_of_2(D // 2)
    with launch_device(q):
        _rope_kernel[(B * T,)](
            q, k, cos, sin, qo, ko,
            q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
            qo.stride(0), qo.stride(1), qo.stride(2), ko.stride(0), ko.stride(1), ko.stride(2),
            cos.stride(0), cos.stride(1), sin.stride(0), sin.stride(1),
            T, HQ, HK, D // 2,
            BACKWARD=backward, BLOCK_HQ=triton.next_power_of_2(HQ), BLOCK_HK=triton.next_power_of_2(HK),
            BLOCK_D=block_d, num_warps=4 if block_d * max(HQ, HK) <= 4096 else 8,
        )
    return qo, ko


@_rope.register_fake
def _(q, k, cos, sin, backward):
    return (
        q.new_empty(q.shape, dtype=torch.promote_types(q.dtype, cos.dtype)),
        k.new_empty(k.shape, dtype=torch.promote_types(k.dtype, cos.dtype)),
    )


def _rope_setup(ctx, inputs, output):
    q, k, cos, sin, backward = inputs
    ctx.q_dtype, ctx.k_dtype = q.dtype, k.dtype
    ctx.transposed = backward  # this call applied R^T (it is the backward of a forward call)
    ctx.cos_grad = ctx.needs_input_grad[2] or ctx.needs_input_grad[3]
    # q and k are only needed for the (rare) gradient wrt cos/sin; HF's cos/sin carry none.
    ctx.save_for_backward(cos, sin, *((q, k) if ctx.cos_grad else ()))


def _rope_backward(ctx, dqo, dko):
    cos, sin = ctx.saved_tensors[:2]
    # The op is linear in q and k: the gradient of R (forward) is R^T, and that of R^T is R.
    # NOTE: under create_graph=True (double backward) this also runs for a backward call; passing True
    # unconditionally applied R^T there too, silently giving wrong second derivatives.
    dq, dk = torch.ops.steel.rope(dqo, dko, cos, sin, not ctx.transposed)
    dcos = dsin = None
    if ctx.cos_grad:
        q, k = ctx.saved_tensors[2:]
        # R:   out = (x1*c1 - x2*s1, x2*c2 + x1*s2) = q*cos + rot(q)*sin -> dsin = dout * rot(q)
        # R^T: out = (x1*c1 + x2*s2, x2*c2 - x1*s1)                    -> dsin = rot(dout) * q
        # (dcos = dout * q for both), summed over the heads that share a position.
        dcos = (dqo * q).sum(1) + (dko * k).sum(1)
        if ctx.transposed:
            dsin = (_rotate_half(dqo) * q).sum(1) + (_rotate_half(dko) * k).sum(1)
        else:
            dsin = (dqo * _rotate_half(q)).sum(1) + (dko * _rotate_half(k)).sum(1)
        dcos = dcos.sum(0, keepdim=True) if cos.shape[0] == 1 else dcos
        dsin = dsin.sum(0, keepdim=True) if sin.shape[0] == 1 else dsin
        dcos, dsin = dcos.to(cos.dtype), dsin.to(sin.dtype)
    return dq.to(ctx.q_dtype), dk.to(ctx.k_dtype), dcos, dsin, None


_rope.register_autograd(_rope_backward, setup_context=_rope_setup)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb_ref(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch RoPE, line for line HF `apply_rotary_pos_emb(unsqueeze_dim=1)`; also the CPU fallback."""
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    q_embed = (q * cos) + (_rotate_half(q) * sin)
    k_embed = (k * cos) + (_rotate_half(k) * sin)
    return q_embed, k_embed


def apply_rotary_pos_emb(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, impl: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE on q (B, Hq, T, D) and k (B, Hk, T, D) with cos/sin (B or 1, T, D); returns (q_embed, k_embed)."""
    if q.dim() != 4 or k.dim() != 4 or cos.dim() != 3 or cos.shape != sin.shape:
        raise ValueError(
            f"apply_rotary_pos_emb: want q, k (B, H, T, D) and cos, sin (B, T, D); got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(cos.shape)}, {tuple(sin.shape)}"
        )
    B, _, T, D = q.shape
    agree = k.shape[0] == B and k.shape[2:] == (T, D) and cos.shape[1:] == (T, D) and cos.shape[0] in (1, B)
    if D % 2 or not agree:
        raise ValueError(
            f"apply_rotary_pos_emb: shapes do not agree (or odd head dim): q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}, cos {tuple(cos.shape)}"
        )
    if not use_triton(q, impl):
        return apply_rotary_pos_emb_ref(q, k, cos, sin)
    return torch.ops.steel.rope(q, k, cos, sin, False)
