"""HF output options (`output_hidden_states`, `output_attentions`, `return_dict=False`) as stock Qwen2 gives them."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from steel.model import build_model


def _pair(cfg, attn):
    steel = build_model(cfg).eval()
    qwen = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters=dict(cfg.rope_parameters), tie_word_embeddings=cfg.tie_word_embeddings,
    )).eval()
    qwen.load_state_dict(steel.state_dict(), strict=True)
    steel.config._attn_implementation = qwen.config._attn_implementation = attn
    return steel, qwen


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_hidden_states_and_attentions_match_qwen2(tiny_config, attn):
    torch.manual_seed(0)
    steel, qwen = _pair(tiny_config(ffn_type="swiglu"), attn)
    ids = torch.randint(0, 500, (2, 11))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding: the attention weights of the padded row must be masked the same way
    with torch.no_grad():
        want = qwen(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        got = steel(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    # (embeddings, each layer's output but the last, the final normed state): num_hidden_layers + 1 tensors
    assert got.hidden_states is not None and len(got.hidden_states) == steel.config.num_hidden_layers + 1
    assert len(got.hidden_states) == len(want.hidden_states)
    for g, w in zip(got.hidden_states, want.hidden_states):
        torch.testing.assert_close(g, w)  # same fp32 ops as test_parity: default fp32 tolerances
    # eager returns (B, H, T, T) weights per layer; SDPA computes none (stock Qwen2 then gives an empty tuple)
    assert len(got.attentions) == len(want.attentions) == (steel.config.num_hidden_layers if attn == "eager" else 0)
    for g, w in zip(got.attentions, want.attentions):
        torch.testing.assert_close(g, w)
    torch.testing.assert_close(got.logits, want.logits)


def test_config_flags_and_return_dict_false(tiny_config):
    torch.manual_seed(0)
    steel, qwen = _pair(tiny_config(ffn_type="swiglu"), "eager")
    steel.config.output_hidden_states = qwen.config.output_hidden_states = True  # the config's default counts
    ids = torch.randint(0, 500, (1, 7))
    with torch.no_grad():
        got, want = steel(input_ids=ids, labels=ids), qwen(input_ids=ids, labels=ids)
        assert len(got.hidden_states) == len(want.hidden_states)
        got_t, want_t = steel(input_ids=ids, labels=ids, return_dict=False), qwen(input_ids=ids, labels=ids, return_dict=False)
    # A tuple in ModelOutput order (loss, logits, cache, hidden states), as the stock model returns it.
    assert isinstance(got_t, tuple) and len(got_t) == len(want_t)
    for g, w in zip(got_t, want_t):
        if isinstance(w, torch.Tensor):
            torch.testing.assert_close(g, w)
