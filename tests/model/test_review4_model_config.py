"""Review 4: SteelConfig refuses what stock configs refuse or what silently built another model."""

from __future__ import annotations

import pytest

from steel.config import ConfigError
from steel.model import SteelConfig, build_model, load_model_config


@pytest.mark.parametrize("rope, missing", [
    ({"rope_type": "linear", "rope_theta": 1e4}, "factor"),
    ({"rope_type": "yarn", "rope_theta": 1e4}, "factor"),
    ({"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}, "low_freq_factor"),
])
def test_rope_parameters_missing_a_key_name_the_field(rope, missing):
    """Accepted before, then a bare KeyError('factor') when the model was built (stock configs refuse them)."""
    with pytest.raises(ConfigError, match=rf"^model\.rope_parameters: Missing required keys .*{missing}"):
        load_model_config({"model_type": "steel", "num_hidden_layers": 1, "rope_parameters": rope})


def test_hidden_size_not_a_multiple_of_heads_is_refused():
    """head_dim was hidden_size // heads, floored: hidden 66 with 4 heads gave q_proj 64 wide, unsaid."""
    with pytest.raises(ConfigError, match=r"tiny\.yaml: model\.hidden_size: must be a multiple of num_attention_heads \(4\)"):
        load_model_config("tiny", ["hidden_size=66"])
    # an explicit head_dim is a choice: attention of another width than the model (as Qwen3)
    cfg = load_model_config("tiny", ["hidden_size=66", "head_dim=8"])
    assert build_model(cfg).model.layers[0].self_attn.q_proj.weight.shape == (4 * 8, 66)
    # a saved config keeps its head_dim: it loads again
    assert SteelConfig.from_dict(cfg.to_dict()).head_dim == 8


@pytest.mark.parametrize("pad", [-1, 512, 600])
def test_pad_token_id_outside_the_vocabulary_is_refused(pad):
    """nn.Embedding reads padding_idx -1 as its last row: that token's embedding was zeroed and got no gradient,
    silently; 512+ was an AssertionError naming no field."""
    with pytest.raises(ConfigError, match=r"tiny\.yaml: model\.pad_token_id: must be null or a token id in \[0, vocab_size 512\)"):
        load_model_config("tiny", [f"pad_token_id={pad}"])
    assert load_model_config("tiny", ["pad_token_id=511"]).pad_token_id == 511
