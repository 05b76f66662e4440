"""Parameter counts and the true training FLOPs per token (for MFU).

"True" counts the matmuls actually executed for one token of a length-T sequence, times 3 for training
(backward = 2 x forward): every projection, the LM head, attention's QK^T and AV over the keys a causal
query really sees ((T + 1) / 2 on average), and the MoE by what the experts really process (in soft MoE
v2/v3 the experts see only n_experts * slots vectors per sequence, not T). Elementwise ops, norms,
softmax and the embedding lookup are not counted. `six_n` is the usual 6 x parameters, which Steel's
own logs used and which overstates the work of a soft MoE (its experts hold most FFN parameters but
process a handful of vectors).
"""

from __future__ import annotations

import math

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig

from steel.model.configuration_steel import SteelConfig


def _meta_model(config: PretrainedConfig) -> torch.nn.Module:
    # Meta device: shapes only, no memory, so steel-1b counts in milliseconds.
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def _is_attention(name: str) -> bool:
    # self_attn (Llama, Qwen2, Steel, OPT), attn (GPT-2), attention (GPT-NeoX), self_attention (Falcon, Bloom)
    return any("attn" in part or "attention" in part for part in name.split("."))


def _decoder_layers(model: torch.nn.Module, num_layers: int) -> torch.nn.ModuleList:
    """The stack of decoder blocks: the ModuleList of num_hidden_layers modules (model.layers in Llama/Qwen2,
    transformer.h in GPT-2, gpt_neox.layers, model.decoder.layers in OPT)."""
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == num_layers:
            return module
    raise ValueError(f"flops: no list of {num_layers} decoder layers found in {type(model).__name__}")


def parameter_counts(config: PretrainedConfig) -> dict[str, int]:
    """Total and per-part parameter counts: embedding (token and learned position lookups), attention, ffn,
    norms, lm_head (0 when tied)."""
    parts = {"embedding": 0, "attention": 0, "ffn": 0, "norms": 0, "lm_head": 0, "other": 0}
    model = _meta_model(config)
    layers = _decoder_layers(model, config.num_hidden_layers)
    in_layers = {id(p) for p in layers.parameters()}
    seen = set()  # a tied lm_head is the embedding's parameter: counted once, as the embedding
    for name, module in model.named_modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if isinstance(module, torch.nn.Embedding):
                parts["embedding"] += p.numel()
            elif name.startswith("lm_head"):
                parts["lm_head"] += p.numel()
            elif "Norm" in type(module).__name__:  # RMSNorm classes, nn.LayerNorm
                parts["norms"] += p.numel()
            elif id(p) in in_layers:
                parts["attention" if _is_attention(name) else "ffn"] += p.numel()
            else:
                parts["other"] += p.numel()
    parts["total"] = sum(parts.values())
    parts["non_embedding"] = parts["total"] - parts["embedding"]
    return parts


def _expert_macs(config: SteelConfig) -> int:
    """Multiply-accumulates of one expert on one vector."""
    h = config.intermediate_size // config.mlp_div_ratio
    return (4 if config.expert_type == "senet" else 3) * config.hidden_size * h


def steel_ffn_macs(config: SteelConfig, seq_len: int) -> float:
    """Forward MACs per token of the FFN of one layer of a SteelConfig."""
    C, n = config.hidden_size, config.num_experts
    S = n * config.slots_per_expert
    kind = config.ffn_type
    if kind == "swiglu":
        return 3 * C * config.intermediate_size
    if kind == "senet":
        return 4 * C * (config.intermediate_size // config.mlp_div_ratio)
    if kind == "soft_moe_v1":
        return C * n + n * _expert_macs(config)  # router + every expert on every token
    # Router logits (C*S) + building slots (S*C: each token adds w*x into S slots) + combine (S*C).
    routing = 3 * C * S
    if kind in ("soft_moe_v2", "soft_moe_v3"):
        vectors_per_token = S / seq_len  # S slot vectors per sequence
    elif kind == "soft_moe_causal":
        vectors_per_token = S * math.ceil(seq_len / config.moe_chunk_size) / seq_len  # S per chunk
    else:
        raise ValueError(f"ffn_type: unknown {kind!r}")
    return routing + vectors_per_token * _expert_macs(config)


def _generic_layer_macs(config: PretrainedConfig) -> tuple[float, float]:
    """(attention projections, ffn) MACs per token of one layer of a stock dense HF decoder."""
    for attr in ("num_local_experts", "num_experts", "n_routed_experts"):
        if getattr(config, attr, None):
            raise ValueError(f"flops: {config.model_type} has {attr}={getattr(config, attr)}; "
                             "routed MoE FLOPs are not modelled for stock HF configs")
    layer = _decoder_layers(_meta_model(config), config.num_hidden_layers)[0]
    # Every matrix of a dense layer multiplies each token once; 1-D tensors (norms, biases) are not matmuls.
    attn = sum(p.numel() for n, p in layer.named_parameters() if p.ndim >= 2 and _is_attention(n))
    ffn = sum(p.numel() for n, p in layer.named_parameters() if p.ndim >= 2 and not _is_attention(n))
    return attn, ffn


def flops_per_token(config: PretrainedConfig, seq_len: int) -> dict[str, float]:
    """Training FLOPs per token of a causal LM config at sequence length `seq_len`.

    Keys: true (3 x forward), forward, attention / ffn / lm_head (forward, all layers), six_n,
    six_n_non_embedding, params, params_non_embedding, seq_len.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len: must be > 0 (got {seq_len})")
    if not getattr(config, "num_attention_heads", None):  # Mamba, RWKV: an AttributeError traceback before
        raise ValueError(f"flops: {config.model_type} has no attention heads (num_attention_heads); "
                         "attention-free models are not modelled")
    params = parameter_counts(config)
    C, L, V = config.hidden_size, config.num_hidden_layers, config.vocab_size
    H = config.num_attention_heads
    Hkv = getattr(config, "num_key_value_heads", None) or H
    D = getattr(config, "head_dim", None) or C // H
    # NOTE: by model_type, not isinstance: a Steel directory loaded with trust_remote_code may carry the
    # config class of its own configuration_steel.py copy (transformers 5.4 prefers it to the registered one).
    if isinstance(config, SteelConfig) or getattr(config, "model_type", None) == "steel":
        proj = C * H * D + 2 * C * Hkv * D + H * D * C
        ffn = steel_ffn_macs(config, seq_len)
    else:
        proj, ffn = _generic_layer_macs(config)
    # NOTE: causal attention: query t sees t + 1 keys, (T + 1) / 2 on average; QK^T and AV are H*D MACs per key each.
    attn_scores = 2 * H * D * (seq_len + 1) / 2
    attention = 2 * L * (proj + attn_scores)
    ffn_flops = 2 * L * ffn
    lm_head = 2 * C * V
    forward = attention + ffn_flops + lm_head
    return {
        "true": 3 * forward,
        "forward": forward,
        "attention": attention,
        "ffn": ffn_flops,
        "lm_head": lm_head,
        "six_n": 6 * params["total"],
        "six_n_non_embedding": 6 * params["non_embedding"],
        "params": params["total"],
        "params_non_embedding": params["non_embedding"],
        "seq_len": seq_len,
    }
