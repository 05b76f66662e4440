"""Fused linear + cross-entropy that never materialises the (N, V) logits.

The Liger approach: the forward walks the tokens in chunks; for each chunk it computes the logits
with one GEMM, a Triton kernel turns them IN PLACE into d loss / d logits (and the per-row loss), and
two more GEMMs give this chunk's d hidden and its share of d weight. So the forward already holds all
gradients, and the backward only scales them by the incoming scalar gradient. Peak extra memory is one
(chunk, V) logits buffer instead of the (N, V) logits plus their fp32 copy plus their gradient.

Semantics are `F.cross_entropy(hidden @ weight.T + bias, labels, ignore_index=, label_smoothing=,
reduction=)` with reduction "mean" (over the non-ignored tokens) or "sum". Under autocast, the GEMMs
run in the autocast dtype like `F.linear` would; the loss is accumulated in fp32.
"""

from __future__ import annotations

import torch

from steel.kernels.dispatch import HAS_TRITON, launch_device, num_warps_for, use_triton

# Target elements of one logits chunk: 2**28 is 512 MiB in bf16; vocab 151936 -> 1664 tokens per chunk,
# vocab 32000 -> 8192. NOTE: large chunks keep the GEMMs efficient and the number of (V, C) gradient
# accumulations (memory-bound, ~V*C*8 bytes each) small; Liger's ~128-token chunks make those dominate.
CHUNK_ELEMENTS = 2**28
# Widest vocabulary tile of one program. NOTE: ptxas for sm_90 (Triton 3.9): 16384 with 16 warps uses
# 116 registers and no spills; 32768 spills (64 B with 32 warps, 300+ B with 16).
MAX_BLOCK_V = 16384

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _ce_grad_kernel(
        LOGITS, stride_l, LABELS, LOSS, DENOM, V, ignore_index, smoothing,
        HAS_SMOOTHING: tl.constexpr, BLOCK_V: tl.constexpr,
    ):
        # One program per row of a (n, V) logits chunk; overwrites the row with d loss / d logits.
        row = tl.program_id(0).to(tl.int64)
        base = LOGITS + row * stride_l
        label = tl.load(LABELS + row)
        if label == ignore_index:
            for off in range(0, V, BLOCK_V):
                cols = off + tl.arange(0, BLOCK_V)
                tl.store(base + cols, tl.zeros((BLOCK_V,), dtype=tl.float32).to(LOGITS.dtype.element_ty),
                         mask=cols < V)
            tl.store(LOSS + row, 0.0)
        else:
            # Pass 1: online max / sum-exp in fp32 (and the sum of logits for label smoothing).
            m = float("-inf")
            d = 0.0
            sum_x = 0.0
            for off in range(0, V, BLOCK_V):
                cols = off + tl.arange(0, BLOCK_V)
                x = tl.load(base + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
                m_new = tl.maximum(m, tl.max(x, axis=0))
                d = d * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
                m = m_new
                if HAS_SMOOTHING:
                    sum_x += tl.sum(tl.where(cols < V, x, 0.0), axis=0)
            lse = m + tl.log(d)
            x_y = tl.load(base + label).to(tl.float32)
            # F.cross_entropy with smoothing eps: (1-eps)*(lse - x_y) + eps*(lse - mean_j x_j)
            if HAS_SMOOTHING:
                loss = lse - (1.0 - smoothing) * x_y - smoothing * sum_x / V
            else:
                loss = lse - x_y
            tl.store(LOSS + row, loss)
            # Pass 2: d loss / d x_j = (softmax_j - (1-eps)*[j == y] - eps/V) / denom, where denom is
            # the count of non-ignored labels (mean) or 1 (sum).
            scale = 1.0 / tl.load(DENOM)
            for off in range(0, V, BLOCK_V):
                cols = off + tl.arange(0, BLOCK_V)
                mask = cols < V
                x = tl.load(base + cols, mask=mask, other=0.0).to(tl.float32)
                g = tl.exp(x - lse)
                if HAS_SMOOTHING:
                    g = g - smoothing / V - tl.where(cols == label, 1.0 - smoothing, 0.0)
                else:
                    g = g - tl.where(cols == label, 1.0, 0.0)
                tl.store(base + cols, (g * scale).to(LOGITS.dtype.element_ty), mask=mask)


_addmm_dtype_ok: dict[tuple, bool] = {}  # (device type, acc dtype, input dtype) -> addmm(out_dtype=) works


def _addmm_out_dtype_works(acc: torch.Tensor, a: torch.Tensor) -> bool:
    """Whether this torch has addmm(out_dtype=) with an fp32 `self` for these dtypes, tried once on 16x16
    tensors: a try around the real call also caught a CUDA out-of-memory (a RuntimeError) and took it for
    a missing kernel, switching to the path with a (V, C) temporary for the rest of the run."""
    key = (acc.device.type, acc.dtype, a.dtype)
    if key not in _addmm_dtype_ok:
        small_acc, small = acc.new_zeros((16, 16)), a.new_zeros((16, 16))
        try:
            torch.ops.aten.addmm.dtype_out(small_acc, small, small, acc.dtype, out=small_acc)
            _addmm_dtype_ok[key] = True
        except torch.OutOfMemoryError:
            raise
        except RuntimeError:  # older torch: `self` must have the inputs' dtype
            _addmm_dtype_ok[key] = False
    return _addmm_dtype_ok[key]


def _accumulate_mm(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """acc += a @ b, where acc may be fp32 while a and b are in the (bf16) compute dtype."""
    if acc.dtype == a.dtype:
        acc.addmm_(a, b)
        return
    if acc.is_cuda:
        if _addmm_out_dtype_works(acc, a):
            # NOTE: cuBLAS accumulates in fp32 and adds into the fp32 acc in the same call: no bf16
            # rounding of each chunk's contribution and no (V, C) temporary.
            torch.ops.aten.addmm.dtype_out(acc, a, b, acc.dtype, out=acc)
            return
        acc.add_(torch.mm(a, b, out_dtype=acc.dtype))  # fp32 result, one (V, C) temporary
        return
    acc.add_(torch.mm(a, b))  # CPU: no out_dtype kernel; each chunk's product is rounded once


@torch.library.custom_op("steel::fused_linear_ce_fwd", mutates_args=())
def _flce_fwd(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    bias: torch.Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    compute_dtype: torch.dtype,
    chunk_size: int,
    compute_grad: bool,
    reduction_sum: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    N, C = hidden.shape
    V = weight.shape[0]
    dev = hidden.device
    w = weight.to(compute_dtype)  # (V, C); a no-op when the dtypes already agree
    b = bias.to(compute_dtype) if bias is not None else None
    labels = labels.to(torch.int64).contiguous()
    # What the summed loss is divided by: the count of non-ignored labels (mean) or 1 (sum).
    if reduction_sum:
        denom = torch.ones((1,), dtype=torch.float32, device=dev)
    else:
        denom = (labels != ignore_index).sum().to(torch.float32).reshape(1)
    loss_rows = torch.empty((N,), dtype=torch.float32, device=dev)
    if compute_grad:
        dh = torch.empty((N, C), dtype=hidden.dtype, device=dev)
        # NOTE: fp32 master weights get an fp32 accumulator (their grad is fp32 anyway); bf16 weights
        # accumulate the per-chunk bf16 GEMM results in bf16, as Liger does (few chunks, see CHUNK_ELEMENTS).
        dw_dtype = torch.float32 if weight.dtype == torch.float32 else compute_dtype
        dw = torch.zeros((V, C), dtype=dw_dtype, device=dev)
        db = hidden.new_zeros((V,), dtype=torch.float32) if bias is not None else hidden.new_empty((0,))
    else:
        dh, dw, db = hidden.new_empty((0,)), weight.new_empty((0,)), hidden.new_empty((0,))
    block_v = min(triton.next_power_of_2(V), MAX_BLOCK_V)
    with torch.autocast(dev.type, enabled=False), launch_device(hidden):
        for start in range(0, N, chunk_size):
            end = min(start + chunk_size, N)
            h = hidden[start:end].to(compute_dtype)  # (n, C)
            logits = torch.addmm(b, h, w.t()) if b is not None else h @ w.t()  # (n, V), compute dtype
            _ce_grad_kernel[(end - start,)](
                logits, logits.stride(0), labels[start:end], loss_rows[start:end], denom, V,
                ignore_index, label_smoothing,
                HAS_SMOOTHING=label_smoothing > 0.0, BLOCK_V=block_v, num_warps=num_warps_for(block_v),
            )
            if compute_grad:  # logits now holds d loss / d logits for this chunk
                dh[start:end] = logits @ w  # (n, C)
                _accumulate_mm(dw, logits.t(), h)  # (V, C) += (V, n) @ (n, C)
                if bias is not None:
                    db += logits.sum(0, dtype=torch.float32)
    loss = loss_rows.sum() / denom[0]
    if compute_grad:
        dw = dw.to(weight.dtype)
        if bias is not None:
            db = db.to(bias.dtype)
    return loss, dh, dw, db


@_flce_fwd.register_fake
def _(hidden, weight, labels, bias, ignore_index, label_smoothing, compute_dtype, chunk_size, compute_grad,
      reduction_sum):
    loss = hidden.new_empty((), dtype=torch.float32)
    if not compute_grad:
        return loss, hidden.new_empty((0,)), weight.new_empty((0,)), hidden.new_empty((0,))
    # Shapes and (contiguous) strides exactly as the real op allocates them.
    db = bias.new_empty(bias.shape) if bias is not None else hidden.new_empty((0,))
    return loss, hidden.new_empty(hidden.shape), weight.new_empty(weight.shape), db


def _flce_setup(ctx, inputs, output):
    ctx.has_bias = inputs[3] is not None
    ctx.save_for_backward(*output[1:])


class _NoDoubleBackward(torch.autograd.Function):
    """Identity on the gradients whose own backward raises (used only under create_graph=True)."""

    @staticmethod
    def forward(ctx, *grads):
        return tuple(g.clone() for g in grads)

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError(
            "fused_linear_cross_entropy has no double backward (its gradients are computed in the forward "
            "and carry no graph to hidden or weight); use impl='torch' to differentiate them"
        )


def _flce_backward(ctx, dloss, _ddh, _ddw, _ddb):
    dh, dw, db = ctx.saved_tensors
    if dh.numel() == 0 and dw.numel() == 0:
        raise RuntimeError("fused_linear_cross_entropy: backward through a call made without gradients")
    # The gradients were computed in the forward for a loss gradient of 1; scale by the real one.
    grads = [dh * dloss.to(dh.dtype), dw * dloss.to(dw.dtype)] + ([db * dloss.to(db.dtype)] if ctx.has_bias else [])
    if torch.is_grad_enabled():
        # NOTE: create_graph=True. Differentiating these again reached this op's backward through the
        # saved dh/dw/db with a zero loss gradient: second derivatives came out silently 0. Raise instead.
        grads = list(_NoDoubleBackward.apply(*grads))
    ddb = grads[2] if ctx.has_bias else None
    return grads[0], grads[1], None, ddb, None, None, None, None, None, None


_flce_fwd.register_autograd(_flce_backward, setup_context=_flce_setup)


def fused_linear_cross_entropy_ref(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    bias: torch.Tensor | None = None,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """Pure torch: full logits, then `F.cross_entropy` in fp32 (what HF's loss does); the CPU fallback."""
    logits = torch.nn.functional.linear(hidden, weight, bias)  # (N, V)
    return torch.nn.functional.cross_entropy(
        logits.float(), labels,
        ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction,
    )


def default_chunk_size(n_tokens: int, vocab_size: int) -> int:
    """Tokens per logits chunk: about CHUNK_ELEMENTS elements, a multiple of 128 rows for the GEMMs."""
    rows = max(128, CHUNK_ELEMENTS // vocab_size // 128 * 128)
    return max(1, min(n_tokens, rows))


def fused_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    bias: torch.Tensor | None = None,
    *,
    reduction: str = "mean",
    chunk_size: int | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Cross-entropy of `hidden @ weight.T + bias` against `labels`, averaged or summed over tokens.

    hidden (N, C), weight (V, C), labels (N,) with `ignore_index` entries skipped; returns an fp32 scalar.
    `reduction="sum"` suits gradient accumulation (divide by the global token count once); like
    `F.cross_entropy`, "mean" over zero non-ignored labels is NaN while "sum" is 0.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"fused_linear_cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"fused_linear_cross_entropy: want hidden (N, C) and weight (V, C); got {tuple(hidden.shape)}, "
            f"{tuple(weight.shape)}"
        )
    if labels.shape != (hidden.shape[0],):
        raise ValueError(f"fused_linear_cross_entropy: labels {tuple(labels.shape)} != ({hidden.shape[0]},)")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"fused_linear_cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}"
        )
    if chunk_size is not None and chunk_size < 1:
        # (a negative one walked no chunk at all: the loss and gradients were uninitialised memory)
        raise ValueError(f"fused_linear_cross_entropy: chunk_size must be >= 1, got {chunk_size}")
    if not use_triton(hidden, impl):
        return fused_linear_cross_entropy_ref(
            hidden, weight, labels, ignore_index, label_smoothing, bias, reduction=reduction
        )
    V = weight.shape[0]
    # Out-of-range labels would read outside the logits row: fail loudly, without a host sync on GPU.
    torch._assert_async(
        ((labels == ignore_index) | ((labels >= 0) & (labels < V))).all(),
        "fused_linear_cross_entropy: a label is outside [0, vocab_size) and is not ignore_index",
    )
    dev_type = hidden.device.type
    if torch.is_autocast_enabled(dev_type):
        compute_dtype = torch.get_autocast_dtype(dev_type)
    else:
        compute_dtype = torch.promote_types(hidden.dtype, weight.dtype)
    compute_grad = torch.is_grad_enabled() and (
        hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    chunk = chunk_size if chunk_size is not None else default_chunk_size(hidden.shape[0], V)
    return torch.ops.steel.fused_linear_ce_fwd(
        hidden, weight, labels, bias, int(ignore_index), float(label_smoothing), compute_dtype, int(chunk),
        compute_grad, reduction == "sum",
    )[0]
