"""Stock HF configs (model_type llama, gpt2, ...) from YAML, dicts and overrides: a key that is no field of
the config class is an error naming it; what the class consumes (aliases, legacy keys) is accepted."""

from __future__ import annotations

import json

import pytest

from steel.config import ConfigError
from steel.model import load_model_config
from steel.train.trainer import build_model_config

LLAMA = {"model_type": "llama", "vocab_size": 128, "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}


def test_a_typo_in_a_stock_yaml_is_an_error_naming_the_field(tmp_path):
    # LlamaConfig kept `hiden_size` as a junk attribute and hidden_size stayed 32, without a word.
    path = tmp_path / "llama.yaml"
    path.write_text(json.dumps(LLAMA | {"hiden_size": 64}))
    with pytest.raises(ConfigError, match=rf"^{path}: model\.hiden_size: unknown LlamaConfig field$"):
        load_model_config(str(path))


def test_an_override_typo_names_the_override_not_the_file(tmp_path):
    path = tmp_path / "llama.yaml"
    path.write_text(json.dumps(LLAMA))
    with pytest.raises(ConfigError, match=r"^model\.hiden_size: unknown LlamaConfig field \(set by an override\)$"):
        build_model_config(str(path), {"hiden_size": 64})
    with pytest.raises(ConfigError, match=r"^model\.ffn_typ: unknown SteelConfig field \(set by an override\)$"):
        build_model_config("tiny", {"ffn_typ": "senet"})
    cfg = build_model_config(str(path), {"hidden_size": 64})
    assert cfg.hidden_size == 64


def test_aliases_and_legacy_keys_of_stock_configs_are_accepted():
    # GPT-2's attribute_map (hidden_size -> n_embd) and llama's legacy rope_theta are consumed, not junk
    gpt2 = load_model_config({"model_type": "gpt2", "vocab_size": 128, "hidden_size": 32, "num_hidden_layers": 2,
                              "num_attention_heads": 4})
    assert (gpt2.n_embd, gpt2.n_layer, gpt2.n_head) == (32, 2, 4)
    llama = load_model_config(LLAMA | {"rope_theta": 5e5})
    assert llama.rope_parameters["rope_theta"] == 5e5


def test_an_hf_directory_may_carry_keys_of_its_own(tmp_path):
    # A config.json written by another tool (quantization notes, a custom key) still loads; overrides are checked.
    (tmp_path / "config.json").write_text(json.dumps(LLAMA | {"my_tool_note": "x"}))
    assert load_model_config(str(tmp_path)).hidden_size == 32
    with pytest.raises(ConfigError, match=r"model\.hiden_size: unknown LlamaConfig field \(set by an override\)"):
        load_model_config(str(tmp_path), ["hiden_size=64"])


def test_an_unknown_model_type_is_one_short_line():
    with pytest.raises(ConfigError) as e:
        load_model_config({"model_type": "lama"})
    assert str(e.value).startswith("model.model_type: unknown model type 'lama' (close: llama")
    assert len(str(e.value)) < 200  # transformers' own message listed ~1,000 model types


def test_a_config_class_without_valid_defaults_is_not_checked(monkeypatch):
    # The check builds the class's default config to know its fields; a class whose defaults do not validate
    # (transformers' gemma4_assistant) raised a traceback for a valid user config. Such a class is not checked.
    from transformers import LlamaConfig

    from steel.model import _unused_stock_keys

    class Strict(LlamaConfig):
        def __init__(self, **kwargs):
            if not kwargs:
                raise ValueError("no valid defaults")
            super().__init__(**kwargs)

    cfg = Strict(hidden_size=32, hiden_size=64)
    assert _unused_stock_keys(cfg, {"hidden_size": 32, "hiden_size": 64}, ["hidden_size", "hiden_size"]) == []
    assert _unused_stock_keys(LlamaConfig(hiden_size=64), {"hiden_size": 64}, ["hiden_size"]) == ["hiden_size"]


def test_a_key_the_model_code_reads_is_accepted():
    # Qwen2Config declares no head_dim, but Qwen2's attention reads getattr(config, "head_dim", ...): the field
    # check refused a key that really changes the model. The built model uses it (the reference).
    from steel.model import build_model

    cfg = load_model_config({**LLAMA, "model_type": "qwen2", "head_dim": 16})
    model = build_model(cfg)
    assert model.model.layers[0].self_attn.q_proj.weight.shape == (4 * 16, 32)
    with pytest.raises(ConfigError, match=r"model\.head_dimm: unknown Qwen2Config field"):
        load_model_config({**LLAMA, "model_type": "qwen2", "head_dimm": 16})
