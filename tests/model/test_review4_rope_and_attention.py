"""Review 4: dynamic RoPE as the stock models apply it; position_ids reach the attention function."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, Qwen2Config, Qwen2ForCausalLM
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

from steel.model import SteelConfig, build_model


def test_dynamic_rope_grows_its_base_past_max_positions_as_qwen2(tiny_config):
    """rope_type "dynamic" (NTK) computed the default frequencies at every length: past max_position_embeddings
    Steel gave other logits than the stock Qwen2 model with the same weights (and than its own export)."""
    torch.manual_seed(0)
    theta, factor, max_pos, T = 1e4, 2.0, 16, 40
    cfg = tiny_config(ffn_type="swiglu", max_position_embeddings=max_pos)
    cfg = SteelConfig(**{**cfg.to_dict(), "rope_parameters": {"rope_type": "dynamic", "rope_theta": theta,
                                                               "factor": factor}})
    steel = build_model(cfg).eval()
    qwen = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, rms_norm_eps=cfg.rms_norm_eps, max_position_embeddings=max_pos,
        rope_parameters=dict(cfg.rope_parameters),
    )).eval()
    qwen.load_state_dict(steel.state_dict(), strict=True)
    ids = torch.randint(0, cfg.vocab_size, (1, T))
    with torch.no_grad():
        logits = steel(input_ids=ids).logits
        # the same fp32 ops in the same order as Qwen2: default fp32 tolerances
        torch.testing.assert_close(logits, qwen(input_ids=ids).logits)
    # by hand: NTK-aware base at length T (Qwen2 / transformers' dynamic NTK formula)
    d = cfg.head_dim
    base = theta * ((factor * T / max_pos) - (factor - 1)) ** (d / (d - 2))
    expected = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float) / d))
    torch.testing.assert_close(steel.model.rotary_emb.inv_freq, expected)
    # after a long forward, a short one too (whether the base resets below max_position_embeddings is
    # transformers' choice: 5.25 resets it, 5.4 keeps the grown one; Steel follows the installed version)
    short = ids[:, : max_pos - 4]
    with torch.no_grad():
        torch.testing.assert_close(steel(input_ids=short).logits, qwen(input_ids=short).logits)


def _varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """What flash attention does with no mask and packed position_ids: attention inside each sequence of the
    row, a sequence starting where the positions restart at 0 (transformers' _prepare_from_posids)."""
    pos = kwargs.get("position_ids")
    B, H, T, _ = query.shape
    rep = H // key.shape[1]
    key, value = key.repeat_interleave(rep, 1), value.repeat_interleave(rep, 1)
    seq = torch.zeros(B, T, dtype=torch.long) if pos is None else (pos.expand(B, T) == 0).long().cumsum(-1)
    mask = (seq[:, :, None] == seq[:, None, :]) & torch.ones(T, T, dtype=torch.bool).tril()  # (B, T, T)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask[:, None], scale=scaling)
    return out.transpose(1, 2), None


def test_packed_position_ids_reach_the_attention_function(tiny_config):
    """Padding-free packing (DataCollatorWithFlattening: one row, position_ids restarting per sequence, no mask)
    relies on the attention function reading position_ids, as flash attention does; Steel did not pass them
    (Qwen2 does), so under flash attention a packed row attended across its sequences."""
    AttentionInterface.register("steel_review4_varlen", _varlen_attention)
    AttentionMaskInterface.register("steel_review4_varlen", ALL_MASK_ATTENTION_FUNCTIONS["flash_attention_2"])
    torch.manual_seed(0)
    for ffn in ("swiglu", "soft_moe_v1"):
        model = build_model(tiny_config(ffn_type=ffn)).eval()
        a, b, c = (torch.randint(1, 512, (1, n)) for n in (5, 3, 4))
        with torch.no_grad():
            alone = torch.cat([model(input_ids=x).logits for x in (a, b, c)], dim=1)
            model.set_attn_implementation("steel_review4_varlen")
            pos = torch.cat([torch.arange(5), torch.arange(3), torch.arange(4)])[None]
            packed = model(input_ids=torch.cat([a, b, c], 1), position_ids=pos, use_cache=False).logits
        # sdpa with a boolean mask on the same rows vs on each sequence alone: fp32 summation order only
        torch.testing.assert_close(packed, alone, msg=lambda m: f"{ffn}: {m}")


def test_longrope_switches_to_long_factor_as_qwen2(tiny_config):
    """rope_type longrope (was refused: Steel's RoPE had no switch to long_factor) gives Qwen2's logits with the
    same weights below, past and again below original_max_position_embeddings, and its long factors past it."""
    torch.manual_seed(0)
    orig, max_pos = 16, 64
    cfg = tiny_config(ffn_type="swiglu", max_position_embeddings=max_pos)
    half = cfg.head_dim // 2
    rope = {"rope_type": "longrope", "rope_theta": 1e4, "short_factor": [1.0] * half,
            "long_factor": [1.0 + i for i in range(half)], "original_max_position_embeddings": orig}
    cfg = SteelConfig(**{**cfg.to_dict(), "rope_parameters": rope})
    steel = build_model(cfg).eval()
    qwen = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, rms_norm_eps=cfg.rms_norm_eps, max_position_embeddings=max_pos,
        rope_parameters=dict(rope),
    )).eval()
    qwen.load_state_dict(steel.state_dict(), strict=True)
    ids = torch.randint(0, cfg.vocab_size, (1, 40))
    d = cfg.head_dim
    base = 1e4 ** (torch.arange(0, d, 2, dtype=torch.float) / d)
    with torch.no_grad():
        for n in (orig - 4, 40, orig - 4):
            # the same fp32 ops in the same order as Qwen2: default fp32 tolerances
            torch.testing.assert_close(steel(input_ids=ids[:, :n]).logits, qwen(input_ids=ids[:, :n]).logits)
            if n > orig:  # by hand: inv_freq = 1 / (factor_i * theta^(2i/d)) with the long factors
                torch.testing.assert_close(steel.model.rotary_emb.inv_freq,
                                           1.0 / (torch.tensor(rope["long_factor"]) * base))
