"""The Steel model: SteelConfig / SteelForCausalLM registered with the HF Auto classes.

`load_model_config(spec)` turns a YAML file, a name in `configs/model/`, an HF directory or a dict into
a `transformers.PretrainedConfig`; `build_model(config)` instantiates it. `model_type: steel` (the
default) gives a SteelConfig; any other model_type (llama, qwen2, ...) a stock HF config.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import re
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from steel.config import ConfigError, apply_overrides, parse_override, read_yaml
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
    # Own fields, base PretrainedConfig fields, and whatever to_dict() writes (e.g. output_attentions).
    # (PretrainedConfig is a dataclass from transformers 5.x on, not in 5.0)
    return (set(inspect.signature(SteelConfig.__init__).parameters)
            | set(getattr(SteelConfig, "__dataclass_fields__", ()))
            | set(SteelConfig(num_hidden_layers=1).to_dict()))


# SteelConfig fields whose annotation is not checked before construction: `kernels: dict` also takes "all",
# "none" or null (SteelConfig.__post_init__ resolves them and names the field when it refuses a value).
_UNCHECKED_FIELDS = {"kernels"}
_SCALARS = {bool: "true/false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}


def _allowed_types(tp: Any) -> tuple | None:
    """The alternatives of an annotation built from bool/int/float/str/dict/None and list[<those>], or None."""
    alternatives = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    for a in alternatives:
        if get_origin(a) is list:
            if len(get_args(a)) != 1 or get_args(a)[0] not in _SCALARS:
                return None
        elif a is not type(None) and a not in _SCALARS:
            return None
    return alternatives


@functools.lru_cache(maxsize=None)
def _steel_field_types() -> dict[str, tuple]:
    """SteelConfig's own fields -> the types their annotations allow (the fields whose annotations we can check)."""
    namespace = vars(sys.modules[SteelConfig.__module__])
    out = {}
    for name, ann in SteelConfig.__dict__.get("__annotations__", {}).items():
        if name in _UNCHECKED_FIELDS:
            continue
        try:
            tp = eval(ann, namespace) if isinstance(ann, str) else ann  # `from __future__ import annotations`
        except Exception:  # noqa: BLE001 - an annotation we cannot resolve is not checked
            continue
        if (allowed := _allowed_types(tp)) is not None:
            out[name] = allowed
    return out


def _is_a(value: Any, tp: Any) -> bool:
    if tp is type(None):
        return value is None
    if get_origin(tp) is list:
        return isinstance(value, list) and all(_is_a(v, get_args(tp)[0]) for v in value)
    if isinstance(value, bool):  # bool is an int: True is no hidden_size
        return tp is bool
    if tp is float:
        return isinstance(value, (int, float))
    return isinstance(value, tp)


def _describe(allowed: tuple) -> str:
    names = [_SCALARS[a] for a in allowed if a in _SCALARS]
    names += [f"a list of {_SCALARS[get_args(a)[0]].split(' ', 1)[-1]}s" for a in allowed if get_origin(a) is list]
    names += ["null"] if type(None) in allowed else []
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _check_steel_types(data: dict[str, Any], where: str) -> None:
    """Raise ConfigError naming the field whose value does not fit SteelConfig's annotation (before it is built:
    a wrong type failed deep inside as e.g. "unsupported operand type(s) for //: 'str' and 'int'")."""
    for name, allowed in _steel_field_types().items():
        if name in data and not any(_is_a(data[name], tp) for tp in allowed):
            raise ConfigError(f"{where}model.{name}: expected {_describe(allowed)}, got {data[name]!r}")


# A number with an exponent and no dot: YAML 1.1 (PyYAML) reads `5e5` and `1e-5` as strings.
_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _yaml11_floats(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with such strings read as the numbers they are, in nested mappings too (rope_parameters).

    NOTE: stock configs had no such conversion: `rope_theta: 5e5` in a llama YAML died at build with "unsupported
    operand type(s) for ** or pow(): 'str' and 'Tensor'"; no config field holds a string of this form.
    """
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = _yaml11_floats(value)
        elif isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            value = float(value)
        out[key] = value
    return out


_CONFIG_READ_RE = re.compile(r"""(?:getattr|hasattr)\(\s*(?:self\.)?config\s*,\s*["'](\w+)["']""")


@functools.lru_cache(maxsize=None)
def _read_by_model_code(cls: type) -> frozenset[str]:
    """Config attributes the causal LM's modeling file (and transformers' shared model code) reads with a
    default, `getattr(config, "head_dim", ...)`: fields no config class declares but the model honours
    (Qwen2, Phi-3 and OLMo-2 read `head_dim` so)."""
    from transformers import modeling_utils
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    files = [inspect.getsourcefile(modeling_utils)]
    try:
        files.append(inspect.getsourcefile(MODEL_FOR_CAUSAL_LM_MAPPING[cls]))
    except (KeyError, TypeError, ValueError):  # no causal LM class: the trainer refuses the config anyway
        pass
    names: set[str] = set()
    for f in files:
        try:
            names |= set(_CONFIG_READ_RE.findall(Path(f).read_text(encoding="utf-8")))
        except (OSError, TypeError):
            continue
    return frozenset(names)


def _unused_stock_keys(cfg: PretrainedConfig, data: dict[str, Any], keys: Iterable[str]) -> list[str]:
    """The keys among `keys` that the stock config class neither has nor consumed (a typo like `hiden_size`).

    A stock PretrainedConfig keeps any unknown keyword as an attribute: `hiden_size: 64` left hidden_size at its
    default without a word. Keys it consumes (legacy `rope_theta`, `num_labels`, `torch_dtype`, attribute_map
    aliases such as GPT-2's `hidden_size`) do not come back in `to_dict()`, so they are not reported.
    """
    cls = type(cfg)
    try:
        defaults = cls().to_dict()
    except Exception:  # noqa: BLE001 -- a class with no valid default (gemma4_assistant): nothing to compare with
        return []
    known = set(defaults) | set(getattr(cls, "attribute_map", {}) or {}) | _read_by_model_code(cls)
    written = cfg.to_dict()
    return sorted(k for k in keys if k in data and k not in known and k in written)


def _config_from_dict(data: dict[str, Any], source: str, check: Iterable[str] | None = None,
                      overridden: Iterable[str] = ()) -> PretrainedConfig:
    """`check`: the keys of a stock config that must be its fields (None: all of them; an HF directory's
    config.json may carry extra keys of its own, so only the overrides are checked there)."""
    data = _yaml11_floats(data)
    model_type = data.pop("model_type", "steel")
    where = f"{source}: " if source else ""
    overridden = set(overridden)

    def unknown_field(key: str, cls_name: str) -> ConfigError:
        if key in overridden:  # not in the file: the override (`--set`, train's `model.overrides`) named it
            return ConfigError(f"model.{key}: unknown {cls_name} field (set by an override)")
        return ConfigError(f"{where}model.{key}: unknown {cls_name} field")
    if model_type == "steel":
        float_fields = {name for name, allowed in _steel_field_types().items() if float in allowed}
        for key in sorted({"rope_theta", "rms_norm_eps", "initializer_range", "attention_dropout"} | float_fields):
            if isinstance(data.get(key), str):  # YAML 1.1 reads `1e6` (no dot) as a string
                try:
                    data[key] = float(data[key])
                except ValueError:
                    raise ConfigError(f"{where}model.{key}: expected a number, got {data[key]!r}") from None
        unknown = sorted(set(data) - _steel_fields() - _COMMON_KEYS)
        if unknown:
            raise unknown_field(unknown[0], "SteelConfig")
        _check_steel_types(data, where)
        try:
            return SteelConfig(**data)
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            # SteelConfig's own checks raise ValueError("field: message"); anything else names no field
            msg = str(e)
            if msg.split(":", 1)[0] in _steel_fields() | _COMMON_KEYS and ":" in msg:
                raise ConfigError(f"{where}model.{msg}") from None
            raise ConfigError(f"{where}model: invalid config ({msg})") from None
    if model_type not in CONFIG_MAPPING:  # transformers' message lists all ~1,000 model types
        close = difflib.get_close_matches(str(model_type), [*CONFIG_MAPPING.keys(), "steel"], n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise ConfigError(f"{where}model.model_type: unknown model type {model_type!r}{hint}")
    try:
        cfg = AutoConfig.for_model(model_type, **data)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"{where}model.model_type: cannot build a {model_type!r} config: {e}") from None
    except Exception as e:  # noqa: BLE001 -- huggingface_hub's StrictDataclassError (not a ValueError), multi-line
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        raise ConfigError(f"{where}model: invalid {model_type!r} config: {lines[-1] if lines else e}") from None
    unused = _unused_stock_keys(cfg, data, data if check is None else check)
    if unused:
        raise unknown_field(unused[0], type(cfg).__name__)
    return cfg


def load_model_config(spec: str | Path | dict | PretrainedConfig, overrides: Iterable[str] = ()) -> PretrainedConfig:
    """YAML path | name in configs/model/ | HF model directory | dict | config -> PretrainedConfig.

    `overrides` are `key=value` strings (as `--set`) applied before the config is built.
    """
    overrides = list(overrides)
    overridden = [parse_override(o)[0][0] for o in overrides]  # top-level keys the overrides set
    strict = True  # a YAML file or a dict is all ours: every key must be a field
    if isinstance(spec, PretrainedConfig):
        if not overrides:
            return spec
        data, source, strict = spec.to_dict(), "", False
    elif isinstance(spec, dict):
        data, source = dict(spec), ""
    elif (path := Path(spec)).is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise ConfigError(f"{path}: not an HF model directory (no config.json)")
        data, source, strict = json.loads(cfg_file.read_text()), str(cfg_file), False
    elif path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{path}: no such model config file")
        data = json.loads(path.read_text()) if path.suffix == ".json" else read_yaml(path)
        source = str(path)
    elif (named := CONFIG_DIR / f"{spec}.yaml").is_file():
        data, source = read_yaml(named), str(named)
    else:
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"model config {str(spec)!r}: not a file, an HF directory or a name in {known}")
    try:
        data = apply_overrides(data, overrides)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}" if source else str(e)) from None
    return _config_from_dict(data, source, None if strict else overridden, overridden)


def build_model(config: PretrainedConfig | str | Path | dict) -> PreTrainedModel:
    """Instantiate a causal LM from a config (or anything load_model_config accepts), randomly initialised."""
    return AutoModelForCausalLM.from_config(load_model_config(config))


__all__ = [
    "SteelConfig", "SteelForCausalLM", "SteelModel", "SteelCausalityWarning", "FFN_TYPES", "LEAKING_FFN_TYPES",
    "load_model_config", "build_model",
]
