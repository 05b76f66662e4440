"""With ffn_type=swiglu, SteelForCausalLM is the stock Qwen2ForCausalLM: same names, logits, gradients."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from steel.model import build_model


@pytest.mark.parametrize("tied", [False, True])
def test_swiglu_matches_qwen2(tiny_config, tied):
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="swiglu", tie_word_embeddings=tied)
    steel = build_model(cfg)
    qwen = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters=dict(cfg.rope_parameters), tie_word_embeddings=tied,
    ))
    # Same parameter names and shapes: a strict load must succeed (this is what makes checkpoints portable).
    assert set(steel.state_dict()) == set(qwen.state_dict())
    qwen.load_state_dict(steel.state_dict(), strict=True)

    ids = torch.randint(0, cfg.vocab_size, (2, 19))
    out_s = steel(input_ids=ids, labels=ids)
    out_q = qwen(input_ids=ids, labels=ids)
    # Same fp32 ops in the same order except SDPA vs HF's mask plumbing: default fp32 tolerances of assert_close.
    torch.testing.assert_close(out_s.logits, out_q.logits)
    torch.testing.assert_close(out_s.loss, out_q.loss)
    out_s.loss.backward()
    out_q.loss.backward()
    grads_q = {n: p.grad for n, p in qwen.named_parameters()}
    for name, p in steel.named_parameters():
        # Gradients accumulate over B*T rows; rtol/atol a few fp32 ulps above the default for summation order.
        torch.testing.assert_close(p.grad, grads_q[name], rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


def enable_activation_checkpointing(model) -> None:
    """transformers 5.25 names it activation_checkpointing_enable; before (5.4, the oldest Steel supports)
    gradient_checkpointing_enable, deprecated since."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


def test_gradient_checkpointing_gives_identical_gradients(tiny_config):
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=2)
    plain, ckpt = build_model(cfg), build_model(cfg)
    ckpt.load_state_dict(plain.state_dict())
    enable_activation_checkpointing(ckpt)
    ids = torch.randint(0, cfg.vocab_size, (2, 9))
    plain(input_ids=ids, labels=ids).loss.backward()
    ckpt(input_ids=ids, labels=ids).loss.backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        # Recomputation runs the same ops on the same values: bit-identical.
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=lambda m: f"{name}: {m}")


def test_attention_gets_one_dtype_under_autocast(tiny_config, monkeypatch):
    """Under bf16 autocast with fp32 weights, RoPE's fp32 cos/sin made q and k fp32 while v was bf16: flex
    attention (no autocast op) then computed q k^T in fp32. Every attention function now gets bf16 q, k, v.
    With SDPA, whose own autocast rounds fp32 q and k to bf16, the logits are bit-identical to transformers'
    Qwen2 (which does not cast them) under the same autocast."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    seen = []

    def probe(module, q, k, v, *args, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype))
        return sdpa_attention_forward(module, q, k, v, *args, **kwargs)

    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="swiglu")
    model = build_model(cfg).eval()
    qwen = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters=dict(cfg.rope_parameters), tie_word_embeddings=False,
    )).eval()
    qwen.load_state_dict(model.state_dict(), strict=True)
    ids = torch.randint(1, 500, (2, 16))
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        want = qwen(input_ids=ids).logits
        monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS, "steel_probe", probe)
        model.config._attn_implementation = "steel_probe"
        got = model(input_ids=ids).logits
    assert seen and set(seen) == {(torch.bfloat16,) * 3}
    assert torch.equal(got, want)


def test_activation_checkpointing_in_training_returns_no_cache(tiny_config):
    """GradientCheckpointingLayer drops the cache in training: the forward returned an empty cache (length 0)
    that a next call would have continued from position 0. Stock Qwen2 turns use_cache off and returns None.
    Without gradients Steel does what the installed transformers' stock Qwen2 does: transformers 5.25 keeps
    the cache (nothing is checkpointed), 5.4's layers drop it there too (then no cache, not an empty one)."""
    from steel.infer.load import output_cache

    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="swiglu")
    model = build_model(cfg).train()
    qwen = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, rope_parameters=dict(cfg.rope_parameters),
    )).train()
    for m in (model, qwen):
        enable_activation_checkpointing(m)
    ids = torch.randint(0, 512, (1, 6))
    assert output_cache(model(input_ids=ids, use_cache=True)) is None
    assert output_cache(qwen(input_ids=ids, use_cache=True)) is None
    with torch.no_grad():
        ref = output_cache(qwen(input_ids=ids, use_cache=True))
        got = output_cache(model(input_ids=ids, use_cache=True))
    assert (got is None) == (ref is None)
    assert got is None or got.get_seq_length() == ref.get_seq_length() == 6
