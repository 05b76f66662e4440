"""Steel: a Qwen2-style decoder whose FFN is selected by `config.ffn_type`.

Reads as a spec, top to bottom: the four swappable ops (reference versions), attention, the FFN
variants, the decoder. Self-contained: imports only torch and transformers (plus the sibling config),
because `steel export` copies this file into a plain HF directory loaded with `trust_remote_code=True`.

FFN variants (B = batch, T = sequence, C = hidden, n = experts, p = slots per expert, S = n * p):
- swiglu          stock Qwen2 MLP                       down(act(gate(x)) * up(x))
- senet           Steel's two-layer gated block         h = act(gate_up(x)) * up(x); act(gate_down(h)) * down(h)
- soft_moe_v1     per-token softmax gate over n experts, every expert on every token (causal)
- soft_moe_v2     the seed's v2 as published: dispatch softmax over slots, combine softmax over the
                  sequence (reads the future; kept to reproduce the seed's non-converging curve)
- soft_moe_v3     Soft MoE (Puigcerver et al. 2023): dispatch softmax over tokens, combine softmax
                  over slots. What the released Steel-LLM used. Reads the future (see README, "The model").
- soft_moe_causal v3's parameters and routing, but the slots a token sees are built from its causal
                  prefix only (rebuilt every `moe_chunk_size` tokens). Causal; cached decoding keeps
                  running slot sums in the KV cache object. With document_mask, each document of a packed
                  row has its own chunk grid and slots (as if alone), in cached decoding too.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_steel import LEAKING_FFN_TYPES, SteelConfig

# NOTE: transformers 5.25 renamed the KV cache `past_key_values` to `cache`: the forward argument that
# `generate` passes, the model outputs' field, `create_causal_mask`'s argument and what gradient
# checkpointing drops. Earlier 5.x know only `past_key_values`. Steel's forwards take either; outputs, masks
# and layers get the name of the transformers installed (a forward that ignored `cache=` decoded each new
# token with no past: `generate` went wrong from its second token).
CACHE_KEY = "cache" if "cache" in getattr(BaseModelOutputWithPast, "__dataclass_fields__", {}) else "past_key_values"
_MASK_CACHE_KEY = "cache" if "cache" in inspect.signature(create_causal_mask).parameters else "past_key_values"


def _one_cache(past_key_values, cache):
    if past_key_values is not None and cache is not None:
        raise ValueError("give one of `cache` and `past_key_values` (its name before transformers 5.25), not both")
    return cache if cache is not None else past_key_values

# ----------------------------------------------------------------------------------------------------
# Swappable ops: pure-torch references. `config.kernels[name]` other than "torch" takes the function of
# the same name from `steel.kernels` instead (same signature, same parameters, same checkpoints).


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # NOTE: variance in fp32 and the weight applied after casting back, exactly as Qwen2RMSNorm.
    dtype = x.dtype
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """q, k: (B, H, T, D); cos, sin: (B, T, D). HF rotate_half convention."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, D)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


def fused_linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100,
    label_smoothing: float = 0.0, *, reduction: str = "mean",
) -> torch.Tensor:
    """hidden (N, C), weight (V, C), labels (N,) -> loss over non-ignored labels, mean or sum (logits in fp32)."""
    logits = hidden @ weight.t()  # (N, V)
    return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, label_smoothing=label_smoothing,
                           reduction=reduction)


_REFERENCE_KERNELS: dict[str, Callable] = {
    "rmsnorm": rms_norm,
    "rope": apply_rotary_pos_emb,
    "silu_mul": silu_mul,
    "cross_entropy": fused_linear_cross_entropy,
}


def _resolve_kernel(config: SteelConfig, name: str) -> Callable:
    """The reference op, unless `config.kernels[name]` asks for the steel.kernels one."""
    choice = (getattr(config, "kernels", None) or {}).get(name, "torch")
    reference = _REFERENCE_KERNELS[name]
    if choice == "torch":
        return reference
    try:
        module = importlib.import_module("steel.kernels")
    except ImportError as e:
        # NOTE: a directory saved with kernels on (save_pretrained, a trainer checkpoint) must still load
        # where steel is not installed (remote code): the reference is the same function in plain torch.
        warnings.warn(
            f"config.kernels.{name} = {choice!r} needs the `steel.kernels` package ({e}); using the plain torch "
            f"reference (same function; install steel-llm for the fused kernel)", stacklevel=2,
        )
        return reference
    fn = getattr(module, reference.__name__, None)
    if fn is None:
        raise ImportError(f"config.kernels.{name} = {choice!r}: steel.kernels has no `{reference.__name__}`")
    return fn


def _act_mul_ref(act: Callable, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return act(gate) * up


def _resolve_act_mul(config: SteelConfig) -> Callable:
    """act(gate) * up: the silu_mul kernel when the activation is silu, else the plain expression."""
    if config.hidden_act == "silu":
        return _resolve_kernel(config, "silu_mul")
    return functools.partial(_act_mul_ref, ACT2FN[config.hidden_act])


# ----------------------------------------------------------------------------------------------------
# Norm, RoPE, attention (as Qwen2)


class SteelRMSNorm(nn.Module):
    def __init__(self, config: SteelConfig, hidden_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = config.rms_norm_eps
        self.norm_fn = _resolve_kernel(config, "rmsnorm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_fn(x, self.weight, self.variance_epsilon)


class SteelRotaryEmbedding(nn.Module):
    def __init__(self, config: SteelConfig):
        super().__init__()
        self.config = config
        # read by transformers' dynamic_rope_update (rope_type "dynamic": NTK base grown past this length)
        self.max_seq_len_cached = self.original_max_seq_len = config.max_position_embeddings
        self.rope_type = config.rope_parameters.get("rope_type", "default")
        init_fn = self.compute_default_rope_parameters if self.rope_type == "default" else ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = init_fn(config)
        self.inv_freq = nn.Buffer(inv_freq, persistent=False)
        self.original_inv_freq = nn.Buffer(inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(config: SteelConfig, *args, **kwargs) -> tuple[torch.Tensor, float]:
        base, dim = config.rope_parameters["rope_theta"], config.head_dim
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)), 1.0

    # NOTE: without dynamic_rope_update (as Qwen2's), rope_type "dynamic" computed the default frequencies at
    # every length: past max_position_embeddings it gave other logits than the stock model (and its export).
    @torch.no_grad()
    @dynamic_rope_update
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # NOTE: angles in fp32 even under autocast/bf16: position * inv_freq loses digits in bf16.
        freqs = position_ids[..., None].float() * self.inv_freq.to(x.device, torch.float)  # (B, T, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, D)
        cos, sin = emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling
        return cos.to(x.dtype), sin.to(x.dtype)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, H_kv, T, D) -> (B, H_kv * n_rep, T, D)"""
    if n_rep == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    key, value = repeat_kv(key, module.num_key_value_groups), repeat_kv(value, module.num_key_value_groups)
    attn = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, Tq, Tk)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            attn = attn.masked_fill(~attention_mask, torch.finfo(attn.dtype).min)
        else:
            attn = attn + attention_mask
    attn = F.softmax(attn, dim=-1, dtype=torch.float32).to(query.dtype)
    attn = F.dropout(attn, p=dropout, training=module.training)
    return torch.matmul(attn, value).transpose(1, 2).contiguous(), attn  # (B, Tq, H, D)


class SteelAttention(nn.Module):
    def __init__(self, config: SteelConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        h, hkv, d = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.q_proj = nn.Linear(config.hidden_size, h * d, bias=config.attention_bias)
        self.k_proj = nn.Linear(config.hidden_size, hkv * d, bias=config.attention_bias)
        self.v_proj = nn.Linear(config.hidden_size, hkv * d, bias=config.attention_bias)
        self.o_proj = nn.Linear(h * d, config.hidden_size, bias=False)
        self.rope_fn = _resolve_kernel(config, "rope")

    def forward(self, x, position_embeddings, attention_mask, past_key_values=None, **kwargs):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)  # (B, Hkv, T, D)
        v = self.v_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)  # (B, Hkv, T, D)
        cos, sin = position_embeddings
        q, k = self.rope_fn(q, k, cos, sin)
        if q.dtype != v.dtype and torch.is_autocast_enabled(q.device.type):
            # Under autocast the fp32 cos/sin made q and k fp32 while v is bf16. SDPA's and matmul's autocast
            # rounds them to bf16 anyway (so this changes no value there); flex attention is no autocast op
            # and computed q k^T in fp32, holding fp32 q and k for the backward.
            q, k = q.to(v.dtype), k.to(v.dtype)
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, self.layer_idx)  # (B, Hkv, T_past + T, D)
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        y, weights = attention(
            self, q, k, v, attention_mask,
            dropout=self.config.attention_dropout if self.training else 0.0, scaling=self.scaling, **kwargs,
        )  # (B, T, H, D); weights (B, H, T, T_past + T) from eager, None from SDPA/flash
        return self.o_proj(y.reshape(B, T, -1)), weights


# ----------------------------------------------------------------------------------------------------
# FFN variants


class SteelMLP(nn.Module):
    """SwiGLU, the stock Qwen2 MLP: down(act(gate(x)) * up(x))."""

    def __init__(self, config: SteelConfig, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, config.hidden_size, bias=False)
        self.act_mul = _resolve_act_mul(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_mul(self.gate_proj(x), self.up_proj(x)))


class SteelSENet(nn.Module):
    """Steel's two-layer gated block: h = act(gate_up(x)) * up(x); out = act(gate_down(h)) * down(h).

    differs from Qwen2: both layers are gated and there is no separate output projection; the inner
    width is intermediate_size // mlp_div_ratio.
    """

    def __init__(self, config: SteelConfig):
        super().__init__()
        inner = config.intermediate_size // config.mlp_div_ratio
        self.gate_up_proj = nn.Linear(config.hidden_size, inner, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, inner, bias=False)
        self.gate_down_proj = nn.Linear(inner, config.hidden_size, bias=False)
        self.down_proj = nn.Linear(inner, config.hidden_size, bias=False)
        self.act_mul = _resolve_act_mul(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act_mul(self.gate_up_proj(x), self.up_proj(x))  # (..., inner)
        return self.act_mul(self.gate_down_proj(h), self.down_proj(h))  # (..., C)


def _make_expert(config: SteelConfig) -> nn.Module:
    if config.expert_type == "senet":
        return SteelSENet(config)
    return SteelMLP(config, config.intermediate_size // config.mlp_div_ratio)


class SteelSoftMoEV1(nn.Module):
    """Per-token softmax gate (fp32) over n experts; every expert runs on every token. Causal."""

    def __init__(self, config: SteelConfig):
        super().__init__()
        self.router = nn.Linear(config.hidden_size, config.num_experts, bias=False)
        self.experts = nn.ModuleList(_make_expert(config) for _ in range(config.num_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.softmax(self.router(x).float(), dim=-1).to(x.dtype)  # (B, T, n)
        return sum(gate[..., i, None] * expert(x) for i, expert in enumerate(self.experts))  # (B, T, C)


class SteelSoftMoE(nn.Module):
    """Soft MoE with S = n * p slots. Router `phi` (C, S); expert i processes slots [i*p, (i+1)*p).

    v3 (Puigcerver et al. 2023, Sec. 2.3): logits = scale * l2norm(x) . l2norm(phi) (B, T, S);
      dispatch D = softmax over tokens (dim T), slots = D^T x; combine = softmax over slots (dim S).
    v2 (the seed as published): logits = x . phi, no normalisation; the two softmax axes swapped:
      dispatch over slots, combine over the sequence, so each token's output is ~1/T of an expert output.
    Both mix every position of a row (but its padding) into every slot: the output at t depends on tokens after t.
    """

    def __init__(self, config: SteelConfig, version: str):
        super().__init__()
        self.version = version
        self.num_experts, self.slots_per_expert = config.num_experts, config.slots_per_expert
        self.phi = nn.Parameter(torch.empty(config.hidden_size, config.num_experts * config.slots_per_expert))
        if version != "v2":
            # (1,) not (): FSDP2 shards dim 0 and cannot shard a 0-d tensor.
            self.scale = nn.Parameter(torch.ones(1))
        self.experts = nn.ModuleList(_make_expert(config) for _ in range(config.num_experts))

    def router_logits(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C) -> fp32 logits (B, T, S); scale: `router_scale()` when already at hand."""
        if self.version == "v2":
            return (x @ self.phi.to(x.dtype)).float()
        # NOTE: fp32 like the v1 gate; with both sides L2-normalised |logits| <= |scale|.
        xn = F.normalize(x.float(), dim=-1)
        phin = F.normalize(self.phi.float(), dim=0)
        return (self.router_scale() if scale is None else scale) * (xn @ phin)

    def router_scale(self) -> torch.Tensor:
        """The learned scale (temperature) of the normalised logits, fp32 (1,)."""
        return self.scale.float()

    def run_experts(self, slots: torch.Tensor) -> torch.Tensor:
        """(..., S, C) -> (..., S, C): expert i on its p slots."""
        p = self.slots_per_expert
        return torch.cat([e(slots[..., i * p : (i + 1) * p, :]) for i, e in enumerate(self.experts)], dim=-2)

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, C); token_mask (B, T), 0 at padding: a pad enters no slot and takes no share of a
        softmax over the sequence, so a padded row computes what it computes alone (the outputs at the
        pads are finite and meaningless). None: every position is a token."""
        logits = self.router_logits(x)  # (B, T, S)
        seq_dim, slot_dim = (2, 1) if self.version == "v2" else (1, 2)
        if token_mask is None:
            dispatch = F.softmax(logits, dim=seq_dim)  # v3: columns sum to 1 over T
            combine = F.softmax(logits, dim=slot_dim)  # v3: rows sum to 1 over S
        else:
            # NOTE: pads were mixed into every slot (v3's dispatch and v2's combine are softmaxes over T),
            # so left padding (batched generation, eval) or right padding (SFT rows) changed the real
            # tokens' outputs. Pads get logit finfo.min in the softmax over T, which makes their weight
            # exactly 0 next to any real token; not -inf, so a row of pads only gets a finite uniform
            # softmax (NaN with -inf, in the backward too), zeroed by `real` where it would fill slots. With
            # no pads the masked_fill and the product by 1 change no bit: the unmasked results.
            real = token_mask.bool()[..., None]  # (B, T, 1)
            by_seq = F.softmax(logits.masked_fill(~real, torch.finfo(logits.dtype).min), dim=1)  # (B, T, S)
            by_slot = F.softmax(logits, dim=2)  # (B, T, S)
            if self.version == "v2":  # dispatch over slots: a pad's row of weights is zeroed
                dispatch, combine = by_slot * real, by_seq
            else:
                dispatch, combine = by_seq * real, by_slot
        dispatch, combine = dispatch.to(x.dtype), combine.to(x.dtype)
        slots = torch.einsum("bts,btc->bsc", dispatch, x)  # (B, S, C)
        ys = self.run_experts(slots)  # (B, S, C)
        return torch.einsum("bts,bsc->btc", combine, ys)  # (B, T, C)


class _CappedScale(torch.autograd.Function):
    """scale.clamp(-cap, cap) whose backward, past the cap, keeps the gradient whose descent step goes back
    toward it and drops the one that pushes further out (at the cap and within it: clamp's gradient).

    NOTE: clamp's own backward is 0 past the cap in both directions, and the scale has no weight decay (1-D),
    so the first optimizer step that carried it over the cap froze it for the rest of the run, even when the
    loss later asked for a smaller scale. CLIP clamps its parameter after each step, where it moves back."""

    @staticmethod
    def forward(ctx, scale: torch.Tensor, cap: float) -> torch.Tensor:
        ctx.save_for_backward(scale)
        ctx.cap = cap
        return scale.clamp(-cap, cap)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scale,) = ctx.saved_tensors
        out = ((scale > ctx.cap) & (grad < 0)) | ((scale < -ctx.cap) & (grad > 0))  # descent: scale -= lr * grad
        return grad.masked_fill(out, 0.0), None


class SteelSoftMoECausal(SteelSoftMoE):
    """Soft MoE that reads only the past: v3's parameters, normalisation, scale and combine.

    The slots token t sees are a dispatch-weighted average of its causal prefix, refreshed at the first
    token of every chunk of c = moe_chunk_size tokens: token t in chunk k = t // c uses
        slots_k[s] = sum_{u <= k*c} w[u, s] x[u] / sum_{u <= k*c} w[u, s],   w = exp(logits)
    i.e. v3's softmax over tokens restricted to the prefix [0, k*c]. Experts process S vectors per chunk:
    S * ceil(T / c) per sequence (c = 1: S per token, like v1 with p = 1; c = T: S per sequence, like v3).
    Same parameter names and shapes as v3, so a v3 checkpoint loads into it.

    With document masking (`layout` from `document_layout`, built by SteelModel from the document ids of a
    packed row), every document is computed as if it were alone: its chunk grid restarts at its first
    token (local index l = t - start, chunk l // c) and its slots are prefix sums over its own tokens only.
    All documents of the batch run at once: tokens are grouped by (document, local chunk), the groups'
    sums are prefix-summed over the whole batch and each document's offset subtracted, the experts run
    once on every group's S slots. Cost: the experts process S vectors per group, sum_d ceil(L_d / c)
    groups instead of ceil(T / c); the (group, c) layouts pad <= c - 1 tokens per document; one host
    sync per forward (the number of groups).
    """

    # |scale| is capped (as CLIP caps its logit scale): the prefix weights exp(logits - |scale|) lie in
    # [exp(-2|scale|), 1]. Uncapped, a prefix whose tokens all point away from a slot (chunk 0's prefix is one
    # token) had its slot wrong past |scale| ~ 34.5, its weight sum below `_slots`' 1e-30 floor (44% off at 35),
    # and zero past ~52, every weight underflowed: a silently wrong output, no NaN. At 30 the weights stay
    # >= exp(-60) ~ 8.7e-27, and the backward's 1/den <= 1.1e26; softmax ratios up to e^60 between tokens.
    # Past the cap the scale keeps the gradient that brings it back (`_CappedScale`).
    SCALE_CAP = 30.0

    def __init__(self, config: SteelConfig):
        super().__init__(config, "v3")
        self.chunk = config.moe_chunk_size

    def router_scale(self) -> torch.Tensor:
        """The learned scale clamped to [-SCALE_CAP, SCALE_CAP]; past the cap only a gradient that brings it back
        passes (`_CappedScale`)."""
        return _CappedScale.apply(self.scale.float(), self.SCALE_CAP)

    def _weights(self, x: torch.Tensor, token_mask: torch.Tensor | None):
        # NOTE: one capped scale for both uses: `_CappedScale` keeps or drops the gradient of its whole use.
        scale = self.router_scale()
        logits = self.router_logits(x, scale)  # (B, T, S) fp32
        # NOTE: exp(logits - |scale|) instead of a running max: |logits| <= |scale| bounds it to
        # [exp(-2|scale|), 1] without looking at other tokens, so no future value enters (exact causality).
        w = torch.exp(logits - scale.abs())  # (B, T, S)
        if token_mask is not None:
            w = w * token_mask[..., None].to(w.dtype)
        return w, F.softmax(logits, dim=-1)

    @staticmethod
    def _slots(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        """Weighted prefix sums -> slot vectors; an all-padding prefix (den 0) gives zero slots."""
        return torch.where(den[..., None] > 0, num / den.clamp_min(1e-30)[..., None], 0.0)

    @staticmethod
    def document_layout(doc_ids: torch.Tensor, chunk: int) -> dict:
        """(B, T) document ids (`document_ids`) -> where each token goes in the per-document chunk grid.

        Groups are (document, local chunk) pairs, numbered document by document over the whole batch
        (G in all). Token at local index l is combined with the slots of group (doc, l // c) at row l % c,
        and contributes to group (doc, ceil(l / c)) at row (l - 1) % c (l = 0: its own group, row 0), or
        to the discarded group G if that chunk does not exist (tokens after the document's last chunk start).
        """
        B, T = doc_ids.shape
        local = document_position_ids(doc_ids).reshape(-1)  # (B*T,)
        n_docs = doc_ids[:, -1] + 1  # (B,)
        gdoc = (doc_ids + (n_docs.cumsum(0) - n_docs)[:, None]).reshape(-1)  # (B*T,) document in the batch
        # NOTE: tokens per document by a scatter into B*T slots (N <= B*T documents; the rest stay 0), not
        # torch.bincount, which reads its input's min and max back to the host on CUDA (two more syncs).
        length = torch.zeros_like(gdoc).scatter_add_(0, gdoc, torch.ones_like(gdoc))  # (B*T,) first N used
        K = (length + chunk - 1) // chunk  # (B*T,) chunks per document (0 past the N documents)
        first = K.cumsum(0) - K  # (B*T,) first group of each document
        G = int(K.sum())  # NOTE: one host sync per forward: the number of groups sizes the tensors
        con = (local + chunk - 1) // chunk  # local chunk the token is folded into
        last = doc_ids == doc_ids[:, -1:]  # (B, T) tokens of each row's last document
        doc_first = torch.repeat_interleave(first, K, output_size=G)  # (G,) first group of its document
        # NOTE: the layers read G as doc_first's length, marked dynamic: a compiled layer (parallel.compile)
        # then traces G as a symbol from the first step. G changes with the documents of every batch; as a
        # Python int it was a guard, and the layers recompiled at the first batch with another G. Not while
        # dynamo traces this (`torch.compile(model)`, the layout built inside the compiled forward): marking
        # is a forbidden callable there, and raised.
        if not torch.compiler.is_compiling():
            torch._dynamo.maybe_mark_dynamic(doc_first, 0)
        return {
            "G": G, "chunk": chunk,
            "use_idx": first[gdoc] + local // chunk, "use_pos": local % chunk,
            "con_idx": torch.where(con < K[gdoc], first[gdoc] + con, G),
            "con_pos": torch.where(local == 0, 0, (local - 1) % chunk),
            "doc_first": doc_first,
            # for cached decoding after the prefill: each row continues its last document
            "last_group": (first[gdoc] + local // chunk).view(B, T)[:, -1],  # (B,)
            "last_start": T - 1 - local.view(B, T)[:, -1],  # (B,)
            "last_pending": (last & (con >= K[gdoc]).view(B, T)),  # (B, T)
        }

    def forward(self, x: torch.Tensor, past_key_values: Cache | None = None, layer_idx: int = 0,
                past_length: int = 0, token_mask: torch.Tensor | None = None,
                layout: dict | None = None) -> torch.Tensor:
        """x (B, T, C); token_mask (B, T) 0 for padding, which then never enters a slot; layout: from
        `document_layout` on a fresh forward with document masking (None: the row is one sequence), on a
        cached one {"starts": (B, T) bool, the tokens that begin a document}."""
        state = None
        if past_key_values is not None:
            states = past_key_values.__dict__.setdefault("steel_moe_state", {})
            state = states.get(layer_idx)
            seen = state["seen"] if state is not None else 0
            if seen != past_length:
                raise RuntimeError(
                    f"soft_moe_causal layer {layer_idx}: cache holds MoE state for {seen} tokens but the KV cache "
                    f"has {past_length}: this variant cannot continue a cropped cache (assisted generation: "
                    "prompt_lookup_num_tokens, assistant_model) nor a cache filled without its slot sums; generate "
                    "without assistance (beam search is supported)"
                )
        if state is None:
            if layout is not None:
                y, new_state = self._forward_documents(x, past_key_values is not None, token_mask, layout)
            else:
                y, new_state = self._forward_full(x, past_key_values is not None, token_mask)
            if past_key_values is not None:
                past_key_values.steel_moe_state[layer_idx] = new_state
            return y
        return self._forward_step(x, state, token_mask, None if layout is None else layout["starts"])

    def _forward_full(self, x: torch.Tensor, with_state: bool, token_mask: torch.Tensor | None):
        B, T, C = x.shape
        c, K = self.chunk, math.ceil(x.shape[1] / self.chunk)
        w, combine = self._weights(x, token_mask)  # (B, T, S) each
        xf = x.float()
        # Group 0 = token 0; group k >= 1 = tokens (k-1)c+1 .. kc. Slots of chunk k = prefix sums of groups 0..k.
        num0 = w[:, 0, :, None] * xf[:, 0, None, :]  # (B, S, C)
        den0 = w[:, 0]  # (B, S)
        if K > 1:
            gw = w[:, 1 : (K - 1) * c + 1].reshape(B, K - 1, c, -1)  # (B, K-1, c, S)
            gx = xf[:, 1 : (K - 1) * c + 1].reshape(B, K - 1, c, C)  # (B, K-1, c, C)
            num = torch.cat([num0[:, None], torch.einsum("bkjs,bkjc->bksc", gw, gx)], 1).cumsum(1)  # (B, K, S, C)
            den = torch.cat([den0[:, None], gw.sum(2)], 1).cumsum(1)  # (B, K, S)
        else:
            num, den = num0[:, None], den0[:, None]
        ys = self.run_experts(self._slots(num, den).to(x.dtype))  # (B, K, S, C)
        pad = K * c - T
        comb = F.pad(combine, (0, 0, 0, pad)).reshape(B, K, c, -1).to(x.dtype)  # (B, K, c, S)
        y = torch.einsum("bkjs,bksc->bkjc", comb, ys).reshape(B, K * c, C)[:, :T]  # (B, T, C)
        if not with_state:
            return y, None
        tail = slice((K - 1) * c + 1, T)  # tokens after the last chunk start: not yet in the slots
        state = {
            "seen": T, "num": num[:, -1], "den": den[:, -1], "ys": ys[:, -1],
            "pnum": torch.einsum("bts,btc->bsc", w[:, tail], xf[:, tail]), "pden": w[:, tail].sum(1),
        }
        return y, state

    def _forward_documents(self, x: torch.Tensor, with_state: bool, token_mask: torch.Tensor | None,
                           layout: dict):
        """`_forward_full` run on every document of every row separately, in one pass (see the class doc)."""
        B, T, C = x.shape
        c, G = layout["chunk"], layout["doc_first"].shape[0]  # G (number of groups): see document_layout
        assert c == self.chunk, "layout built for another moe_chunk_size"
        w, combine = self._weights(x, token_mask)  # (B, T, S) each
        S = w.shape[-1]
        xf = x.float()
        # Each group's tokens in a (G + 1, c) grid (row G: tokens folded into no chunk, dropped).
        con = (layout["con_idx"], layout["con_pos"])
        gw = w.new_zeros(G + 1, c, S).index_put(con, w.reshape(-1, S))  # (G+1, c, S)
        gx = xf.new_zeros(G + 1, c, C).index_put(con, xf.reshape(-1, C))  # (G+1, c, C)
        num = torch.einsum("gjs,gjc->gsc", gw[:G], gx[:G])  # (G, S, C)
        den = gw[:G].sum(1)  # (G, S)
        # NOTE: prefix sums over the whole batch minus the sum before the document's first group. In fp64
        # because in fp32 the subtraction keeps the earlier documents' rounding: after a 2k-token document
        # the first slots of the next one could be off by up to ~2k ulps (~1e-4). In fp64 what is left of
        # the earlier documents is ~1e-16 of their sums, so after the cast to fp32 the slots are the
        # document's own to within an ulp (tests/model/test_soft_moe_documents.py).
        cnum, cden = num.double().cumsum(0), den.double().cumsum(0)
        first = layout["doc_first"]
        num = (cnum - F.pad(cnum, (0, 0, 0, 0, 1, 0))[first]).float()  # (G, S, C) each document's own prefix
        den = (cden - F.pad(cden, (0, 0, 1, 0))[first]).float()  # (G, S)
        ys = self.run_experts(self._slots(num, den).to(x.dtype))  # (G, S, C)
        use = (layout["use_idx"], layout["use_pos"])
        comb = combine.to(x.dtype)
        comb = comb.new_zeros(G, c, S).index_put(use, comb.reshape(-1, S))  # (G, c, S)
        y = torch.einsum("gjs,gsc->gjc", comb, ys)[use].view(B, T, C)  # (B, T, C)
        if not with_state:
            return y, None
        lg, wp = layout["last_group"], w * layout["last_pending"][..., None].to(w.dtype)  # (B,), (B, T, S)
        state = {
            "seen": T, "start": layout["last_start"], "num": num[lg], "den": den[lg], "ys": ys[lg],
            "pnum": torch.einsum("bts,btc->bsc", wp, xf), "pden": wp.sum(1),
        }
        return y, state

    def _forward_step(self, x: torch.Tensor, state: dict, token_mask: torch.Tensor | None,
                      starts: torch.Tensor | None = None) -> torch.Tensor:
        """Token-by-token continuation from a cached state (decoding). starts (B, T): tokens that begin a
        document (after an EOS): their row's grid and slots restart there, as in `_forward_documents`."""
        w, combine = self._weights(x, token_mask)
        xf, out = x.float(), []
        for i in range(x.shape[1]):
            contrib = w[:, i, :, None] * xf[:, i, None, :]  # (B, S, C)
            if starts is not None:
                self._restart_documents(state, starts[:, i])
            if "start" in state:  # after a document-masked prefill: row b continues its last document
                self._step_documents(state, contrib, w[:, i], x.dtype)
            elif state["seen"] % self.chunk == 0:  # chunk start: fold pending tokens + this one into the slots
                state["num"] = state["num"] + (state["pnum"] + contrib)
                state["den"] = state["den"] + (state["pden"] + w[:, i])
                state["pnum"], state["pden"] = torch.zeros_like(state["pnum"]), torch.zeros_like(state["pden"])
                state["ys"] = self.run_experts(self._slots(state["num"], state["den"]).to(x.dtype))
            else:
                state["pnum"], state["pden"] = state["pnum"] + contrib, state["pden"] + w[:, i]
            state["seen"] += 1
            out.append(torch.einsum("bs,bsc->bc", combine[:, i].to(x.dtype), state["ys"]))
        return torch.stack(out, dim=1)  # (B, T, C)

    @staticmethod
    def _restart_documents(state: dict, begins: torch.Tensor) -> None:
        """Rows where `begins` (B,) start a new document at this token: empty sums, chunk grid from here."""
        if "start" not in state:  # a state from `_forward_full`: one document from the row's start
            state["start"] = torch.zeros_like(begins, dtype=torch.long)
        state["start"] = torch.where(begins, state["seen"], state["start"])
        for key in ("num", "den", "pnum", "pden"):
            b = begins.view(-1, *[1] * (state[key].ndim - 1))
            state[key] = torch.where(b, 0.0, state[key])

    def _step_documents(self, state: dict, contrib: torch.Tensor, w: torch.Tensor, dtype: torch.dtype) -> None:
        """One decoding step when rows are at different points of their chunk grid (per-row document start)."""
        at = (state["seen"] - state["start"]) % self.chunk == 0  # (B,) this token starts a chunk
        num, den = state["num"] + (state["pnum"] + contrib), state["den"] + (state["pden"] + w)
        pnum, pden = state["pnum"] + contrib, state["pden"] + w
        if bool(at.any()):
            ys = self.run_experts(self._slots(num, den).to(dtype))
            state["ys"] = torch.where(at[:, None, None], ys, state["ys"])
        at2, at3 = at[:, None], at[:, None, None]
        state["num"], state["den"] = torch.where(at3, num, state["num"]), torch.where(at2, den, state["den"])
        state["pnum"], state["pden"] = torch.where(at3, 0.0, pnum), torch.where(at2, 0.0, pden)


def make_ffn(config: SteelConfig) -> nn.Module:
    kind = config.ffn_type
    if kind == "swiglu":
        return SteelMLP(config, config.intermediate_size)
    if kind == "senet":
        return SteelSENet(config)
    if kind == "soft_moe_v1":
        return SteelSoftMoEV1(config)
    if kind in ("soft_moe_v2", "soft_moe_v3"):
        return SteelSoftMoE(config, kind[-2:])
    if kind == "soft_moe_causal":
        return SteelSoftMoECausal(config)
    raise ValueError(f"ffn_type: unknown {kind!r}")


# ----------------------------------------------------------------------------------------------------
# Decoder


class SteelDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: SteelConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.self_attn = SteelAttention(config, layer_idx)
        self.mlp = make_ffn(config)
        self.input_layernorm = SteelRMSNorm(config, config.hidden_size)
        self.post_attention_layernorm = SteelRMSNorm(config, config.hidden_size)

    def forward(self, hidden_states, attention_mask=None, position_embeddings=None, past_key_values=None,
                past_length: int = 0, token_mask: torch.Tensor | None = None, moe_layout: dict | None = None,
                cache=None, **kwargs):
        """-> the new hidden states (B, T, C); with `output_attentions=True`, (them, the attention weights)."""
        past_key_values = _one_cache(past_key_values, cache)
        a, weights = self.self_attn(
            self.input_layernorm(hidden_states), position_embeddings, attention_mask, past_key_values, **kwargs
        )
        h = hidden_states + a
        m = self.post_attention_layernorm(h)
        if isinstance(self.mlp, SteelSoftMoECausal):
            h = h + self.mlp(m, past_key_values, self.layer_idx, past_length, token_mask, moe_layout)
        elif isinstance(self.mlp, SteelSoftMoE):  # v2/v3: padding kept out of the slots
            h = h + self.mlp(m, token_mask)
        else:
            h = h + self.mlp(m)
        return (h, weights) if kwargs.get("output_attentions") else h


_WARNED_LEAKING: set[str] = set()


class SteelCausalityWarning(UserWarning):
    """Training a soft-MoE variant whose outputs depend on future tokens."""


def warn_if_leaking(config: SteelConfig) -> None:
    """Warn loudly, once per process and variant, that a non-causal FFN is being trained."""
    kind = config.ffn_type
    if kind in LEAKING_FFN_TYPES and kind not in _WARNED_LEAKING:
        _WARNED_LEAKING.add(kind)
        warnings.warn(
            f"\n{'!' * 100}\nSteel: ffn_type={kind!r} is NOT causal: every slot mixes all positions of the sequence, "
            "so the output at position t depends on tokens after t. Training reads the future (the loss is "
            "optimistic) and cached generation computes something else. Use soft_moe_causal or soft_moe_v1 "
            f"for a causal soft MoE (`steel model check-causal` measures the leak).\n{'!' * 100}",
            SteelCausalityWarning,
            stacklevel=3,
        )


class SteelPreTrainedModel(PreTrainedModel):
    config_class = SteelConfig
    config: SteelConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["SteelDecoderLayer"]
    _skip_keys_device_placement = ["past_key_values", "cache"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # NOTE: soft MoE v2/v3 keep padding (attention_mask 0) out of their slots since 2026-12-07; a directory
    # exported before carries the old modeling file (remote code), where pads changed a row's outputs.
    # Callers that batch padded rows (steel eval) read this to tell the two apart.
    soft_moe_masks_padding = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, SteelSoftMoE):
            # Soft MoE router as in the paper's reference code (vmoe SoftRouter): LeCun normal,
            # std = 1/sqrt(fan_in) with fan_in = C, and the learned scale starts at 1.
            init.normal_(module.phi, mean=0.0, std=module.phi.shape[0] ** -0.5)
            if hasattr(module, "scale"):
                init.ones_(module.scale)


def is_eos(input_ids: torch.Tensor, eos_token_id: int | list[int]) -> torch.Tensor:
    """(B, T) -> (B, T) bool: the token is one of the EOS ids.

    NOTE: compared id by id with Python ints (kernel arguments); torch.isin needed the ids as a tensor,
    copied from the host every forward: a blocking copy, i.e. a device sync, on a GPU.
    """
    eos = torch.zeros_like(input_ids, dtype=torch.bool)
    for e in eos_token_id if isinstance(eos_token_id, (list, tuple)) else [eos_token_id]:
        eos |= input_ids == e
    return eos


def document_ids(input_ids: torch.Tensor, eos_token_id: int | list[int]) -> torch.Tensor:
    """(B, T) -> (B, T) index of the document of each token; an EOS belongs to the document it ends."""
    eos = is_eos(input_ids, eos_token_id).long()
    return eos.cumsum(1) - eos


def document_position_ids(doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) document ids -> positions restarting at 0 at each document start."""
    idx = torch.arange(doc_ids.shape[1], device=doc_ids.device).expand_as(doc_ids)
    start = torch.ones_like(doc_ids, dtype=torch.bool)
    start[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    return idx - torch.where(start, idx, 0).cummax(dim=1).values


def continue_documents(input_ids: torch.Tensor, eos_token_id: int | list[int], position_ids: torch.Tensor,
                       token_mask: torch.Tensor | None, cache: Cache | None, past_length) -> tuple[torch.Tensor, ...]:
    """Where each new token's document starts, for a fresh forward (past_length 0) or a cached one.

    A document begins at the row's first token (its first real one after left padding) and after every
    EOS. input_ids, position_ids (the caller's numbering), token_mask: (B, T) -> starts (B, T) bool (the
    token begins a document), kv_start (B, T) cache index of the token's document start (it attends to
    keys [kv_start, itself]), and the positions restarted at each document: caller's - its first token's.

    NOTE: a cached step must read the sequence as the uncached forward does, so the cache object carries
    per cached token (B, L) its document's start index, that start's position and whether it is an EOS
    (as soft_moe_causal's running slot sums live there). Per token, not per row: a cache cropped to P
    tokens (assisted decoding) is continued from token P-1. Without it a step attended across every EOS
    at global positions: HF `generate` with a prompt holding an EOS decoded something else than the model
    computes uncached.
    """
    B, T = input_ids.shape
    idx = torch.arange(T, device=input_ids.device)
    pos = position_ids.expand(B, T)
    eos = is_eos(input_ids, eos_token_id)  # (B, T)
    starts = torch.zeros_like(eos)
    starts[:, 1:] = eos[:, :-1]
    past = getattr(cache, "steel_documents", None) if cache is not None else None
    if past_length == 0:  # the row begins here
        starts[:, 0] = True
        if token_mask is not None:
            real = token_mask.bool()
            starts |= real & (real.long().cumsum(1) == 1)
        past = start0 = base0 = None
    elif past is None:  # a cache filled by someone else: read it as one document from its first token
        start0 = base0 = torch.zeros(B, dtype=torch.long, device=input_ids.device)
    else:
        last = past_length - 1
        start0, base0 = past["start"][:, last], past["base"][:, last]
        starts[:, 0] = past["eos"][:, last]
    latest = torch.where(starts, idx, -1).cummax(dim=1).values  # (B, T) latest start among the new tokens, -1: none
    new = latest >= 0
    kv_start = past_length + latest if start0 is None else torch.where(new, past_length + latest, start0[:, None])
    base = pos.gather(1, latest.clamp(min=0))
    if base0 is not None:
        base = torch.where(new, base, base0[:, None])
    if cache is not None:
        here = {"start": kv_start, "base": base, "eos": eos}
        if past is not None:
            here = {k: torch.cat([past[k][:, :past_length], v], dim=1) for k, v in here.items()}
        cache.steel_documents = here
    return starts, kv_start, pos - base


class SteelModel(SteelPreTrainedModel):
    def __init__(self, config: SteelConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(SteelDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = SteelRMSNorm(config, config.hidden_size)
        self.rotary_emb = SteelRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, cache=None, output_hidden_states=None, return_dict=None,
                **kwargs) -> BaseModelOutputWithPast | tuple:
        """HF base model forward. `output_hidden_states`: the embeddings, each layer's output but the last,
        and the final normed state (num_hidden_layers + 1, as transformers' models); `output_attentions`
        (in kwargs: the attention functions read it too): each layer's weights, where the attention
        implementation computes them (eager; SDPA and flash attention do not). With `config.document_mask`,
        each EOS-ended document is read alone, cached or not: it attends only to itself, and positions
        restart at its first token (the caller's `position_ids`, default 0.. after the cache, minus the
        first token's); documents are found by EOS ids, so `inputs_embeds` alone is refused."""
        past_key_values = _one_cache(past_key_values, cache)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        output_attentions = kwargs.pop("output_attentions", None)
        if output_attentions if output_attentions is not None else self.config.output_attentions:
            kwargs["output_attentions"] = True  # the attention functions read it too (SDPA warns it has no weights)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, C)
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if use_cache and self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            use_cache = False  # the checkpointed layers drop the cache: it would come back empty (as stock models)
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
        if isinstance(past_length, torch.Tensor):
            # NOTE: StaticCache returns its own counter, which every layer's update increments in place: the
            # causal MoE then saw the length after its layer's update (and refused the cache). A copy, not
            # int(): no host sync, and a compiled static-cache decode does not specialise on the step. 0-d:
            # transformers 5.4's StaticCache gives a (1,) tensor, which made the per-token document state 3-D.
            past_length = past_length.clone().reshape(())

        token_mask = None  # (B, T) padding of the new tokens, kept out of the soft MoEs' slots
        if isinstance(attention_mask, torch.Tensor) and attention_mask.ndim == 2:
            token_mask = attention_mask[:, -inputs_embeds.shape[1] :]
        and_mask = moe_layout = moe_doc = None
        mask_positions = position_ids  # the caller's: transformers looks for packed sequences in them
        if position_ids is None:
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device)[None] + past_length
        causal_moe, chunk = self.config.ffn_type == "soft_moe_causal", self.config.moe_chunk_size
        if self.config.document_mask:
            # Each EOS-ended document of a row is computed alone: packed rows in training and scoring, and
            # cached decoding past an EOS (of the prompt or generated) continues the same reading.
            if input_ids is None:
                raise ValueError(
                    "document_mask: documents are found by their EOS ids (config.eos_token_id), which "
                    "inputs_embeds does not carry; pass input_ids (or load the model with document_mask=False "
                    "to read each row as one document)"
                )
            starts, kv_start, position_ids = continue_documents(
                input_ids, self.config.eos_token_id, position_ids, token_mask, past_key_values, past_length
            )
            if "flash" in (self.config._attn_implementation or ""):
                # transformers' flash-attention path takes no mask function: the document mask was dropped
                # while positions still restarted at each EOS, so attention crossed documents unsaid. (One
                # document per row, e.g. a prompt, needs no mask: keys from its first real token on.)
                first = attention_mask.long().argmax(1, keepdim=True) if token_mask is not None else 0  # (B, 1)
                if bool((kv_start > first).any()):
                    raise ValueError(
                        f"document_mask: attn_implementation {self.config._attn_implementation} ignores the "
                        "document mask of a row with several documents; use sdpa or flex_attention"
                    )

            def and_mask(batch_idx, head_idx, q_idx, kv_idx):
                # q_idx counts from the cache start (transformers adds the past length); with the causal mask
                # this keeps each query inside its document. kv_idx may run past the new tokens (a StaticCache
                # is longer): causally masked there.
                return kv_idx >= kv_start[batch_idx, q_idx - past_length]

            if causal_moe:
                # fresh forward: each document's chunk grid (pads before a row's first real token are a
                # document of their own, as the left-padding grid below); cached: where the slots restart
                moe_doc = starts.long().cumsum(1) - 1 if past_length == 0 else None
                moe_layout = None if past_length == 0 else {"starts": starts}

        if causal_moe and chunk > 1 and past_length == 0 and moe_doc is None and token_mask is not None \
                and not bool(token_mask[:, 0].all()):
            # NOTE: left padding shifts the chunk grid (counted from index 0): a row padded by a non-multiple
            # of c refreshed its slots at other tokens than alone, and its first real tokens saw only pads.
            # Each row's first real token starts a grid of its own (as a document does): batched = alone.
            real = token_mask.bool()
            starts = real & (real.long().cumsum(1) == 1)  # (B, T) first real token of each row
            starts[:, 0] = False
            moe_doc = starts.long().cumsum(1)  # (B, T) ids from 0: pads, then each document
        if causal_moe and moe_doc is not None:  # built once, shared by every layer
            moe_layout = SteelSoftMoECausal.document_layout(moe_doc, chunk)

        if not isinstance(mask := attention_mask, dict):
            # NOTE: no position_ids with the document mask: with no cache and no 2-D mask, transformers reads
            # restarting positions as packed sequences and calls the mask functions with per-sequence
            # positions in place of row indices (masking_utils.remap_positions_for_packed_sequence), so
            # `doc[b, q_idx]` would read the wrong tokens (it masked keys inside long documents in training).
            # NOTE: nor the default 0..T-1 built above (what training uses): they hold no packed sequence, and
            # transformers' check for one (`find_packed_sequence_indices`) is an `if` on a tensor, a host sync
            # per forward on a GPU.
            mask = create_causal_mask(
                config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                position_ids=None if and_mask is not None else mask_positions, and_mask_function=and_mask,
                **{_MASK_CACHE_KEY: past_key_values},
            )
        else:
            mask = mask["full_attention"]

        h = inputs_embeds
        position_embeddings = self.rotary_emb(h, position_ids)
        hidden_states = () if output_hidden_states else None
        attentions = () if kwargs.get("output_attentions") else None
        for layer in self.layers:
            if hidden_states is not None:
                hidden_states += (h,)
            # NOTE: position_ids reach the attention function (as in Qwen2): flash attention reads packed
            # sequences from them (padding-free batches, DataCollatorWithFlattening); without them it attended
            # across the sequences of a packed row while their positions restarted.
            h = layer(h, attention_mask=mask, position_embeddings=position_embeddings, past_length=past_length,
                      token_mask=token_mask, moe_layout=moe_layout, position_ids=position_ids,
                      **{CACHE_KEY: past_key_values}, **kwargs)
            if attentions is not None:
                h, weights = h
                attentions += (weights,) if weights is not None else ()  # (stock models skip None too)
        h = self.norm(h)
        if hidden_states is not None:
            hidden_states += (h,)
        if use_cache and self.gradient_checkpointing and self.training and past_key_values.get_seq_length() == past_length:
            # NOTE: the checkpointed layers dropped the cache: transformers before 5.25 drop it in training mode
            # even without gradients (5.25 only with them, as `use_cache` above): an empty cache, returned, would
            # be continued from position 0. (A host read, on this rare path only.)
            use_cache = False
        out = BaseModelOutputWithPast(last_hidden_state=h, hidden_states=hidden_states, attentions=attentions,
                                      **{CACHE_KEY: past_key_values if use_cache else None})
        return out if (self.config.return_dict if return_dict is None else return_dict) else out.to_tuple()


class SteelForCausalLM(SteelPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: SteelConfig):
        super().__init__(config)
        self.model = SteelModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        # NOTE: resolved once here, as the other ops: resolving it in the forward imported steel.kernels on
        # every call, which dynamo cannot trace (importlib.import_module): `torch.compile(model)` broke the
        # graph before the loss whenever the fused cross-entropy was on, and `fullgraph=True` raised.
        self.cross_entropy_fn = _resolve_kernel(config, "cross_entropy")
        self.post_init()

    def train(self, mode: bool = True):
        if mode:
            warn_if_leaking(self.config)
        return super().train(mode)

    @staticmethod
    def create_masks_for_generate(attention_mask=None, **kwargs):
        """`generate` with a compileable cache (`cache_implementation="static"`) asks the model for its
        attention masks up front; Steel's forward builds them itself from the 2-D padding mask.

        NOTE: given transformers' prebuilt mask dict, the forward had no 2-D mask left: soft_moe_causal let
        left padding into its slots (and skipped the per-row chunk grid) and document_mask was not applied
        to a prompt holding an EOS, so static-cache generation differed from the dynamic-cache one.
        """
        return attention_mask

    def _reorder_cache(self, cache: Cache, beam_idx: torch.LongTensor) -> Cache:
        """Beam search's reordering of the cache rows (`generate` calls this hook when a model has one).

        NOTE: `Cache.reorder_cache` moves only keys and values: soft_moe_causal's running slot sums (kept in
        the cache object) stayed with the old rows, so cached beam search silently decoded with another
        beam's slots. Every tensor of that state is per row (B, ...); `seen` is a shared count. The same for
        document_mask's per-token document starts (`continue_documents`).
        """
        cache.reorder_cache(beam_idx)
        states = [*getattr(cache, "steel_moe_state", {}).values(), getattr(cache, "steel_documents", {})]
        for state in states:
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    state[key] = value.index_select(0, beam_idx.to(value.device))
        return cache

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, logits_to_keep: int | torch.Tensor = 0,
                return_logits: bool | None = None, num_items_in_batch=None, shift_labels=None,
                loss_reduction: str = "mean", cache=None, return_dict=None, **kwargs) -> CausalLMOutputWithPast | tuple:
        """HF causal LM forward. `labels` = input_ids (shifted here, -100 ignored), or `shift_labels`
        already aligned with the positions (HF's loss kwarg). `loss_reduction="sum"` returns the summed
        loss (what a trainer accumulating micro-batches over ranks needs). With a fused cross-entropy
        kernel and labels, logits are not materialised unless `return_logits=True`."""
        if self.training and torch.is_grad_enabled():
            warn_if_leaking(self.config)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         inputs_embeds=inputs_embeds, use_cache=use_cache, return_dict=True,
                         **{CACHE_KEY: _one_cache(past_key_values, cache)}, **kwargs)
        hidden = out.last_hidden_state  # (B, T, C)
        loss = logits = None
        if labels is not None or shift_labels is not None:
            if shift_labels is None:
                shift_labels = F.pad(labels, (0, 1), value=-100)[:, 1:]
            shift = shift_labels.reshape(-1)  # (B*T,) next-token targets
            flat = hidden.reshape(-1, hidden.shape[-1])  # (B*T, C)
            # HF Trainer's gradient-accumulation normalisation: sum over this batch / items in the whole step
            reduction = "sum" if num_items_in_batch is not None else loss_reduction
            ce = self.cross_entropy_fn
            if ce is fused_linear_cross_entropy:  # reference: the usual logits then cross-entropy
                logits = self.lm_head(hidden)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), shift, ignore_index=-100,
                                       reduction=reduction)
            else:
                loss = ce(flat, self.lm_head.weight, shift, ignore_index=-100, reduction=reduction)
                if return_logits:
                    logits = self.lm_head(hidden)
            if num_items_in_batch is not None:
                loss = loss / num_items_in_batch
        else:
            keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
            logits = self.lm_head(hidden[:, keep])
        out = CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                     attentions=out.attentions, **{CACHE_KEY: getattr(out, CACHE_KEY)})
        return out if (self.config.return_dict if return_dict is None else return_dict) else out.to_tuple()


__all__ = ["SteelForCausalLM", "SteelModel", "SteelPreTrainedModel", "SteelConfig", "SteelCausalityWarning"]
