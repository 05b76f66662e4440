"""Config loading (errors name the field), the steel-1b parameter count, and FLOPs per token by hand."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, Qwen2Config

from steel.config import ConfigError
from steel.model import SteelConfig, build_model, load_model_config
from steel.model.flops import flops_per_token, parameter_counts


def test_steel_1b_has_the_published_parameter_count():
    cfg = load_model_config("steel-1b")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.ffn_type) == (
        1792, 18, 32, "soft_moe_v3")
    with torch.device("meta"):  # shapes only: no memory
        model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == 1_122_922_770  # Steel-LLM as released
    assert parameter_counts(cfg)["total"] == 1_122_922_770
    # The causal variant keeps exactly v3's parameters (a v3 checkpoint loads into it).
    causal = load_model_config("steel-1b", ["ffn_type=soft_moe_causal"])
    assert parameter_counts(causal)["total"] == 1_122_922_770
    dense = parameter_counts(load_model_config("steel-1b-dense"))["total"]
    assert abs(dense - 1_122_922_770) / 1_122_922_770 < 1e-3


def test_load_model_config_specs_and_errors(tmp_path):
    assert isinstance(load_model_config("tiny"), SteelConfig)
    y = tmp_path / "m.yaml"
    y.write_text("hidden_size: 32\nnum_attention_heads: 4\nnum_hidden_layers: 1\nrope_theta: 1e6\n")
    cfg = load_model_config(y)  # model_type defaults to steel; YAML's string "1e6" becomes a float
    assert isinstance(cfg, SteelConfig) and cfg.rope_parameters["rope_theta"] == 1e6
    llama = load_model_config({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4})
    assert isinstance(llama, LlamaConfig) and llama.hidden_size == 64
    with pytest.raises(ConfigError, match=r"m2.yaml: model.ffn_typ: unknown"):
        (tmp_path / "m2.yaml").write_text("ffn_typ: senet\n")
        load_model_config(tmp_path / "m2.yaml")
    with pytest.raises(ConfigError, match=r"model.ffn_type: must be one of"):
        load_model_config("tiny", ["ffn_type=moe"])
    with pytest.raises(ConfigError, match=r"model.num_key_value_heads: must divide"):
        load_model_config("tiny", ["num_key_value_heads=3"])
    with pytest.raises(ConfigError, match=r"model.kernels: keys must be among"):
        load_model_config("tiny", ["kernels={rms: triton}"])
    # A wrong value turned the fused kernel on without a word (any value but "torch" loaded it).
    with pytest.raises(ConfigError, match=r"model.kernels: rmsnorm must be one of \('torch', 'triton'\)"):
        load_model_config("tiny", ["kernels={rmsnorm: fused}"])
    with pytest.raises(ConfigError, match=r"model.kernels: want 'all', 'none' or a mapping"):
        load_model_config("tiny", ["kernels=bogus"])
    with pytest.raises(ConfigError, match="no-such-model"):
        load_model_config("no-such-model")
    with_override = load_model_config(load_model_config("tiny"), ["ffn_type=senet", "attn_implementation=eager"])
    assert with_override.ffn_type == "senet" and with_override._attn_implementation == "eager"
    model = build_model("tiny")
    model.save_pretrained(tmp_path / "hf")
    assert load_model_config(tmp_path / "hf").to_dict()["ffn_type"] == "soft_moe_v3"


def test_flops_per_token_by_hand():
    C, L, V, T, H, Hkv, D = 64, 2, 512, 32, 4, 2, 16
    h = 128 // 4  # SENet inner width
    base = dict(hidden_size=C, intermediate_size=128, num_hidden_layers=L, vocab_size=V, num_attention_heads=H,
                num_key_value_heads=Hkv, mlp_div_ratio=4, num_experts=3, slots_per_expert=2)
    proj = C * H * D + 2 * C * Hkv * D + H * D * C  # q, k, v, o MACs
    scores = 2 * H * D * (T + 1) / 2  # QK^T + AV over (T+1)/2 keys on average
    head = 2 * C * V

    def fwd(ffn_macs):
        return 2 * L * (proj + scores) + 2 * L * ffn_macs + head

    senet = 4 * C * h
    S = 6
    expected = {
        "swiglu": 3 * C * 128,
        "senet": senet,
        "soft_moe_v1": C * 3 + 3 * senet,  # router + all 3 experts per token
        "soft_moe_v3": 3 * C * S + S * senet / T,  # route, dispatch, combine; S expert calls per sequence
        "soft_moe_causal": 3 * C * S + S * senet * 4 / T,  # chunk 8 -> 4 chunks of S expert calls
    }
    for ffn, macs in expected.items():
        cfg = SteelConfig(ffn_type=ffn, moe_chunk_size=8, **base)
        f = flops_per_token(cfg, T)
        assert f["true"] == pytest.approx(3 * fwd(macs), rel=1e-12), ffn
        assert f["six_n"] == 6 * sum(p.numel() for p in build_model(cfg).parameters())


def test_flops_per_token_stock_qwen2():
    cfg = Qwen2Config(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=300, tie_word_embeddings=True)
    T = 10
    proj = 64 * 64 + 2 * 64 * 32 + 64 * 64
    ffn = 3 * 64 * 96
    fwd = 2 * 3 * (proj + 2 * 4 * 16 * (T + 1) / 2) + 2 * 3 * ffn + 2 * 64 * 300
    f = flops_per_token(cfg, T)
    assert f["true"] == pytest.approx(3 * fwd, rel=1e-12)
    assert f["params"] == sum(p.numel() for p in build_model(cfg).parameters())  # tied head counted once
    assert f["params_non_embedding"] == f["params"] - 300 * 64


def test_config_kernel_choices_are_the_kernels_own():
    # configuration_steel.py keeps its own copy (exports carry it without steel); both must agree.
    from steel.kernels import KERNEL_CHOICES
    from steel.model.configuration_steel import KERNEL_CHOICES as CONFIG_CHOICES

    assert CONFIG_CHOICES == KERNEL_CHOICES


def test_flops_per_token_stock_gpt2_layout():
    """A stock dense model whose blocks are not `model.layers` nor its attention `self_attn` (GPT-2:
    transformer.h.N.attn.c_attn, learned position embeddings): counted, not an AttributeError."""
    from transformers import GPT2Config

    C, L, H, V, P, T = 64, 3, 4, 300, 128, 10
    cfg = GPT2Config(n_embd=C, n_layer=L, n_head=H, vocab_size=V, n_positions=P, bos_token_id=None, eos_token_id=None)
    proj = 3 * C * C + C * C  # c_attn (q, k, v) + c_proj
    ffn = 2 * 4 * C * C  # c_fc + c_proj, inner width 4C
    fwd = 2 * L * (proj + 2 * C * (T + 1) / 2) + 2 * L * ffn + 2 * C * V  # tied head is still a matmul
    f = flops_per_token(cfg, T)
    assert f["true"] == pytest.approx(3 * fwd, rel=1e-12)
    assert f["params"] == sum(p.numel() for p in build_model(cfg).parameters())
    assert f["params_non_embedding"] == f["params"] - V * C - P * C  # token and position lookups
    parts = parameter_counts(cfg)
    assert parts["attention"] == L * (4 * C * C + 4 * C) and parts["ffn"] == L * (8 * C * C + 5 * C)
    assert parts["norms"] == (2 * L + 1) * 2 * C and parts["other"] == 0


def test_flops_of_an_attention_free_stock_config_is_a_value_error():
    # Mamba has no num_attention_heads: `steel model info` printed an AttributeError traceback; a ValueError
    # is what `model info` and `steel train` report as one line (as for routed MoE)
    from transformers import AutoConfig

    cfg = AutoConfig.for_model("mamba", vocab_size=256, hidden_size=64, num_hidden_layers=2, state_size=4)
    with pytest.raises(ValueError, match=r"^flops: mamba has no attention heads"):
        flops_per_token(cfg, 128)
