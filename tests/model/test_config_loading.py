"""load_model_config: a wrong field value is one message naming the field (not an arithmetic error)."""

from __future__ import annotations

import pytest

from steel.config import ConfigError
from steel.model import SteelConfig, load_model_config
from steel.train.trainer import build_model_config

TINY = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_experts": 3}


@pytest.mark.parametrize(
    "fields, message",
    [
        # were "model.unsupported operand type(s) for //: 'str' and 'int'" (no field named)
        ({"hidden_size": "abc"}, "model.hidden_size: expected an integer, got 'abc'"),
        ({"num_attention_heads": "x"}, "model.num_attention_heads: expected an integer, got 'x'"),
        ({"rms_norm_eps": "tiny"}, "model.rms_norm_eps: expected a number, got 'tiny'"),
        ({"hidden_size": True}, "model.hidden_size: expected an integer, got True"),
        ({"num_key_value_heads": "2"}, "model.num_key_value_heads: expected an integer or null, got '2'"),
        ({"use_cache": "yes"}, "model.use_cache: expected true/false, got 'yes'"),
        ({"ffn_type": 3}, "model.ffn_type: expected a string, got 3"),
        ({"initializer_range": [0.02]}, r"model.initializer_range: expected a number, got \[0.02\]"),
        ({"eos_token_id": "eos"}, "model.eos_token_id: expected an integer, a list of integers or null, got 'eos'"),
        ({"eos_token_id": [1, "x"]}, "model.eos_token_id: expected an integer, a list of integers or null"),
        # SteelConfig's own validation still speaks (its messages start with the field)
        ({"ffn_type": "moe"}, "model.ffn_type: must be one of"),
        ({"hidden_size": 0}, "model.hidden_size: must be a positive integer"),
        # accepted before, then a shape/KeyError at build or forward, or nothing at all
        ({"head_dim": 7}, "model.head_dim: must be even"),
        ({"hidden_act": "bogus"}, "model.hidden_act: must be one of transformers' activations"),
        ({"rope_parameters": {"rope_type": "bogus", "rope_theta": 1e4}}, "model.rope_parameters: rope_type must be"),
        ({"initializer_range": -1.0}, "model.initializer_range: must be >= 0"),
        ({"attention_dropout": 1.5}, r"model.attention_dropout: must be in \[0, 1\)"),
        ({"max_position_embeddings": 0}, "model.max_position_embeddings: must be > 0"),
        ({"layer_types": ["sliding_attention"] * 2}, "model.layer_types: only full_attention"),
        ({"document_mask": True, "eos_token_id": -3}, r"model.eos_token_id: must be token ids in \[0, vocab_size 512\)"),
    ],
)
def test_bad_field_value_names_the_field(fields, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_model_config({**TINY, **fields})


def test_bad_override_names_the_field_and_the_file():
    # as `steel train ... --set model.overrides.hidden_size=abc` reaches it
    with pytest.raises(ConfigError, match=r"tiny\.yaml: model\.hidden_size: expected an integer, got 'abc'$"):
        build_model_config("tiny", {"hidden_size": "abc"})
    with pytest.raises(ConfigError, match=r"tiny\.yaml: model\.num_attention_heads: expected an integer, got 'x'$"):
        load_model_config("tiny", ["num_attention_heads=x"])


def test_an_error_without_a_field_is_not_glued_onto_model():
    # a wrong value the annotations do not see fails inside SteelConfig with a message that names no field
    # (was "model.'>' not supported between instances of 'str' and 'int'")
    with pytest.raises(ConfigError, match=r"^model: invalid config \('>' not supported between"):
        load_model_config({**TINY, "rope_parameters": {"rope_theta": "x"}})
    with pytest.raises(ConfigError, match=r"^model\.rope_parameters: expected a mapping or null, got 'abc'$"):
        load_model_config({**TINY, "rope_parameters": "abc"})  # was an AttributeError traceback
    with pytest.raises(ConfigError, match=r"^model\.layer_types: expected a list of strings or null, got 'abc'$"):
        load_model_config({**TINY, "layer_types": "abc"})  # was accepted


def test_valid_configs_still_load():
    cfg = load_model_config({**TINY, "rms_norm_eps": "1e-6", "rope_theta": "1e6", "initializer_range": 0,
                             "num_key_value_heads": None, "head_dim": None, "pad_token_id": None,
                             "eos_token_id": [0, 1], "use_cache": False, "hidden_act": "silu"})
    assert isinstance(cfg, SteelConfig)
    assert cfg.rms_norm_eps == 1e-6 and cfg.rope_parameters["rope_theta"] == 1e6  # YAML 1.1 strings for floats
    assert cfg.num_key_value_heads == 4 and cfg.head_dim == 16 and cfg.eos_token_id == [0, 1]
    assert load_model_config("tiny").hidden_size == 64
    assert load_model_config("steel-1b", ["kernels=all"]).kernels["rmsnorm"] == "triton"
    assert build_model_config("tiny", {"hidden_size": 128, "rms_norm_eps": 1e-5}).hidden_size == 128
    # a config round-trips through its own dict (as an HF directory's config.json)
    again = load_model_config(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()


def test_depth_override_of_a_saved_config_resizes_layer_types(tmp_path):
    # A saved config carries layer_types of its own depth; overriding num_hidden_layers was refused
    # ("layer_types: needs one entry per layer") after SteelConfig learned to check layer_types.
    from steel.model import build_model

    load_model_config(TINY).save_pretrained(str(tmp_path))
    cfg = load_model_config(str(tmp_path), ["num_hidden_layers=4"])
    assert cfg.num_hidden_layers == 4 and cfg.layer_types == ["full_attention"] * 4
    assert len(build_model(cfg).model.layers) == 4


def test_yaml_exponent_floats_reach_stock_and_nested_fields(tmp_path):
    """PyYAML (YAML 1.1) reads `5e5` and `1e-5` (no dot) as strings. Steel's own top-level float fields were
    converted; a stock config's were not: `rope_theta: 5e5` in a llama YAML died at build with "unsupported
    operand type(s) for ** or pow(): 'str' and 'Tensor'", and nested rope_parameters kept the string too."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from steel.model import build_model

    dims = {k: TINY[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                 "num_attention_heads", "num_key_value_heads")}
    path = tmp_path / "llama.yaml"
    path.write_text("model_type: llama\n" + "".join(f"{k}: {v}\n" for k, v in dims.items())
                    + "rope_theta: 5e5\nrms_norm_eps: 1e-5\n")
    cfg = load_model_config(path)
    assert cfg.rms_norm_eps == 1e-5 and cfg.rope_parameters["rope_theta"] == 5e5
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    ref = LlamaForCausalLM(LlamaConfig(**dims, rope_theta=500000.0, rms_norm_eps=1e-5)).eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    ids = torch.randint(0, 512, (1, 12))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, ref(input_ids=ids).logits)  # same class, same floats

    steel = tmp_path / "steel.yaml"
    steel.write_text("".join(f"{k}: {v}\n" for k, v in TINY.items()) + "rope_parameters: {rope_theta: 1e4}\n")
    assert load_model_config(steel).rope_parameters["rope_theta"] == 1e4
