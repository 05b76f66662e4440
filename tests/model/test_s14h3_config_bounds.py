"""SteelConfig: defaults are the released Steel-LLM's, and the two bounds no test pinned.

- The class docstring promises that `SteelConfig()` reproduces Steel-LLM (configs/model/steel-1b.yaml). A
  drifted default (RoPE base 1e4 instead of 1e6, say) changes every model built without a YAML: an HF
  directory whose config.json omits the field, `SteelConfig(**overrides)` in scripts.
- attention_dropout must be < 1 (1 zeroes every attention weight) and rms_norm_eps > 0 (0 divides a zero
  row by zero: NaN); both were validated but accepting the edge value went unnoticed.
"""

from __future__ import annotations

import pytest

from steel.model import load_model_config
from steel.model.configuration_steel import SteelConfig


def test_defaults_are_steel_1b():
    released, default = load_model_config("steel-1b").to_dict(), SteelConfig().to_dict()
    for key in ("transformers_version", "architectures", "dtype", "torch_dtype"):
        released.pop(key, None), default.pop(key, None)
    assert default == released
    assert default["rope_parameters"]["rope_theta"] == 1e6  # configs/model/steel-1b.yaml: rope_theta: 1000000.0


@pytest.mark.parametrize(("field", "value"), [("attention_dropout", 1.0), ("rms_norm_eps", 0.0)])
def test_edge_values_are_refused(field, value):
    with pytest.raises(ValueError, match=f"^{field}: "):
        SteelConfig(**{field: value})
