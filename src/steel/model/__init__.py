"""The Steel model: SteelConfig / SteelForCausalLM registered with the HF Auto classes.

`load_model_config(spec)` turns a YAML file, a name in `configs/model/`, an HF directory or a dict into
a `transformers.PretrainedConfig`; `build_model(config)` instantiates it. `model_type: steel` (the
default) gives a SteelConfig; any other model_type (llama, qwen2, ...) a stock HF config.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from steel.config import ConfigError, read_yaml
from steel.model.configuration_steel import FFN_TYPES, LEAKING_FFN_TYPES, SteelConfig
from steel.model.modeling_steel import SteelCausalityWarning, SteelForCausalLM, SteelModel

AutoConfig.register("steel", SteelConfig, exist_ok=True)
AutoModel.register(SteelConfig, SteelModel, exist_ok=True)
AutoModelForCausalLM.register(SteelConfig, SteelForCausalLM, exist_ok=True)
# save_pretrained() then writes `auto_map` and copies configuration_steel.py + modeling_steel.py next to
# the weights, so any saved directory loads with trust_remote_code=True where steel is not installed.
SteelConfig.register_for_auto_class()
SteelForCausalLM.register_for_auto_class("AutoModelForCausalLM")

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "model"

# Keys PretrainedConfig accepts besides SteelConfig's own fields.
_COMMON_KEYS = {"rope_theta", "rope_scaling", "dtype", "torch_dtype", "architectures", "transformers_version",
                "auto_map", "name_or_path", "_name_or_path", "attn_implementation"}


def _steel_fields() -> set[str]:
    return set(inspect.signature(SteelConfig.__init__).parameters) | set(SteelConfig.__dataclass_fields__)


def _config_from_dict(data: dict[str, Any], source: str) -> PretrainedConfig:
    data = dict(data)
    model_type = data.pop("model_type", "steel")
    where = f"{source}: " if source else ""
    if model_type == "steel":
        unknown = sorted(set(data) - _steel_fields() - _COMMON_KEYS)
        if unknown:
            raise ConfigError(f"{where}model.{unknown[0]}: unknown SteelConfig field")
        try:
            return SteelConfig(**data)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{where}model.{e}") from None
    try:
        return AutoConfig.for_model(model_type, **data)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"{where}model.model_type: cannot build a {model_type!r} config: {e}") from None


def load_model_config(spec: str | Path | dict | PretrainedConfig) -> PretrainedConfig:
    """YAML path | name in configs/model/ | HF model directory | dict | config -> PretrainedConfig."""
    if isinstance(spec, PretrainedConfig):
        return spec
    if isinstance(spec, dict):
        return _config_from_dict(spec, "")
    path = Path(spec)
    if path.is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise ConfigError(f"{path}: not an HF model directory (no config.json)")
        model_type = json.loads(cfg_file.read_text()).get("model_type")
        if model_type == "steel":
            return SteelConfig.from_pretrained(path)
        return AutoConfig.from_pretrained(path)
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{path}: no such model config file")
        data = json.loads(path.read_text()) if path.suffix == ".json" else read_yaml(path)
        return _config_from_dict(data, str(path))
    named = CONFIG_DIR / f"{spec}.yaml"
    if named.is_file():
        return _config_from_dict(read_yaml(named), str(named))
    known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"model config {str(spec)!r}: not a file, an HF directory or a name in {known}")


def build_model(config: PretrainedConfig | str | Path | dict) -> PreTrainedModel:
    """Instantiate a causal LM from a config (or anything load_model_config accepts), randomly initialised."""
    return AutoModelForCausalLM.from_config(load_model_config(config))


__all__ = [
    "SteelConfig", "SteelForCausalLM", "SteelModel", "SteelCausalityWarning", "FFN_TYPES", "LEAKING_FFN_TYPES",
    "load_model_config", "build_model",
]
