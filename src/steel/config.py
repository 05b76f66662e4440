"""Typed configuration: YAML mapped onto dataclasses, with `--set a.b=value` overrides.

Every area of Steel declares its configuration as (nested) dataclasses with a docstring or a
comment per field. `load_config(Cls, path, overrides)` reads YAML, applies overrides, and builds
the dataclass tree, checking every value against its annotation. Any error names the offending
field by its dotted path (`train.lr_warmup_steps: expected int, got 'ten'`), so a wrong config is
one clear message instead of a traceback deep inside a run.
"""

from __future__ import annotations

import copy
import dataclasses
import decimal
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem; the message names the field (dotted path) and, when known, the file."""


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check/convert `value` against annotation `tp`; raise ConfigError naming `path`."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path}: must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{path}: {value!r} is not one of {list(choices)}")
        return value
    if value is None:
        raise ConfigError(f"{path}: must not be null (expected {_type_name(tp)})")
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return _build(tp, value, path)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        out = [_convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple or tp is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        k_tp, v_tp = args if args else (Any, Any)
        return {_convert(k, k_tp, f"{path}.<key>"): _convert(v, v_tp, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            # YAML 1.1 reads `1e6` (no dot) as a string, as for floats below: `max_steps: 1e6` was refused while
            # `max_steps: 1.0e6` passed. Decimal keeps it exact (no float rounding above 2**53).
            if isinstance(value, str):
                try:
                    exact = decimal.Decimal(value.strip())
                    # NOTE: at most the 4300 digits of an integer YAML reads (Python's int() cap): int() of
                    # 1e1000000000 builds a billion-digit number (minutes, GBs) before any check could refuse it.
                    if exact.is_finite() and exact.adjusted() < 4300 and exact == exact.to_integral_value():
                        return int(exact)
                except decimal.InvalidOperation:
                    pass
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML 1.1 reads `3e-4` (no dot) as a string; accept numeric strings for floats.
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    pass
            if not isinstance(value, float):
                raise ConfigError(f"{path}: expected a number, got {value!r}")
        # NOTE: no setting of ours means anything at NaN or infinity; `.nan` passed every `< 0` check and
        # then wrote NaN into manifest.json (not JSON) or into a schedule.
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{path}: expected a path, got {value!r}")
        return Path(os.path.expanduser(value))  # `~`: the home directory, as expand_home says
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    return value


def expand_home(obj: Any, *names: str) -> None:
    """`~` in the path fields `names` of the dataclass `obj` (a str, a list of them, or None) is the home
    directory, as a shell expands it; called by the config classes' `__post_init__`, so YAML, `--set` and code
    that builds them alike get it (Path-typed fields are expanded by `_convert`).

    NOTE: a shell leaves `~` alone in YAML, in quotes and after `=` (`--set run_dir=~/runs/a`): taken
    literally, `data.dirs: [~/data]` was "cannot read manifest" and `run_dir: ~/runs/a` wrote into ./~/runs/a.
    """
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, list):
            setattr(obj, name, [os.path.expanduser(v) if isinstance(v, str) else v for v in value])
        elif isinstance(value, str):
            setattr(obj, name, os.path.expanduser(value))


def _fill_defaults(value: dict, default: Any) -> dict:
    """`value` with the keys it lacks taken from the dataclass instance `default` (recursively)."""
    if not (dataclasses.is_dataclass(default) and not isinstance(default, type)):
        return value
    out = dict(value)
    for f in dataclasses.fields(default):
        if not f.init:
            continue
        if f.name not in out:
            out[f.name] = to_dict(getattr(default, f.name))
        elif isinstance(out[f.name], dict):
            out[f.name] = _fill_defaults(out[f.name], getattr(default, f.name))
    return out


def _places_below(cls: type, name: Any, prefix: str, depth: int = 1) -> list[tuple[int, str]]:
    """(depth, dotted path) of each field `name` of the sections below the dataclass `cls` (a list's items as
    `<i>`), for the hint of an unknown field."""
    out = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, sub = hints.get(f.name), f"{prefix}{f.name}."
        if get_origin(tp) in (Union, types.UnionType):  # an optional section
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else None
        if get_origin(tp) is list and get_args(tp):
            tp, sub = get_args(tp)[0], f"{sub}<i>."
        if f.init and dataclasses.is_dataclass(tp) and isinstance(tp, type):
            if any(g.init and g.name == name for g in dataclasses.fields(tp)):
                out.append((depth, f"{sub}{name}"))
            out += _places_below(tp, name, sub, depth + 1)
    return out


def _build(cls: type[T], data: dict, path: str) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=str)  # YAML keys may be ints (`1: a`): never compare int < str
    if unknown:
        where = f"{path}." if path else ""
        # A field of one of the sections below this level (`--set lr=1e-3` for optim.lr, SFT's `self_cognition:`
        # at the top instead of under `data:`) is named: the list of this level's fields alone did not say where
        # it goes. NOTE: at any depth (SFT's `--set count=20`, data.self_cognition.count) and in a list's items.
        inner = [p for _, p in sorted(_places_below(cls, unknown[0], where))]
        hint = f"did you mean {' or '.join(inner)}?; " if inner else ""
        raise ConfigError(
            f"{where}{unknown[0]}: unknown field" + (f" ({hint}known: {', '.join(sorted(fields))})" if fields else "")
        )
    kwargs = {}
    for name, f in fields.items():
        fpath = f"{path}.{name}" if path else name
        if name in data:
            value = data[name]
            if isinstance(value, dict) and f.default_factory is not dataclasses.MISSING:
                # A partial section keeps the field's own defaults (e.g. SFT's optim: lr 2e-5, no weight
                # decay), not those of the section's class (pretraining's).
                value = _fill_defaults(value, f.default_factory())
            kwargs[name] = _convert(value, hints[name], fpath)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{fpath}: required field is missing")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(f"{path}.{msg}" if path and not msg.startswith(path) else msg) from None
    return obj


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (['a','b','c'], parsed value). The value is parsed as YAML (`3`, `true`, `[1,2]`)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=3e-4")
    key, raw = item.split("=", 1)
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return keys, value


def apply_overrides(data: dict, overrides: typing.Iterable[str], cls: type | None = None) -> dict:
    """Apply `a.b=value` overrides to a plain dict (in place) and return it. List items by index: `sources.0.weight=2`.

    With `cls` (the dataclass `data` describes), indexing a list that `data` does not set indexes the field's
    default list (`optim.betas.1=0.99` -> [0.9, 0.99] with the default [0.9, 0.95]).
    """
    for item in overrides:
        keys, value = parse_override(item)
        node: Any = data
        for i, k in enumerate(keys[:-1]):
            _check_container(node, keys[:i])
            if isinstance(node, list):
                node = node[_index(k, node, keys[: i + 1])]
                continue
            if k not in node or node[k] is None:
                default = _default_at(cls, keys[: i + 1]) if cls is not None else _MISSING
                if isinstance(default, (list, tuple, dict)):
                    node[k] = copy.deepcopy(to_dict(default))
                elif default is _MISSING or default is None or dataclasses.is_dataclass(default):
                    node[k] = {}
                else:
                    # A scalar default (`model.config: tiny`) refuses a field below it, as the same value
                    # written in the YAML does: `--set model.config.hidden_size=256` built a mapping of that
                    # one field, a different model (the defaults of the model class) without a word.
                    _check_container(default, keys[: i + 1], " (its default)")
            node = node[k]
        last = keys[-1]
        _check_container(node, keys[:-1])
        if isinstance(node, list):
            node[_index(last, node, keys)] = value
        else:
            node[last] = value
    return data


_MISSING = object()


def _check_container(node: Any, keys: list[str], what: str = "") -> None:
    """Refuse to set a key below `keys` when the value there is a scalar (`model.config.hidden_size=32` with
    `model.config: tiny`): item assignment on it was a TypeError traceback, not an error naming the field."""
    if not isinstance(node, (dict, list)):
        # a preset's fields are changed through model.overrides, which the message said nowhere
        hint = "; a preset's fields are set with model.overrides.FIELD=VALUE" if keys == ["model", "config"] else ""
        raise ConfigError(f"{'.'.join(keys)}: {node!r}{what} is a {type(node).__name__}, not a mapping or list; "
                          f"cannot set a field below it{hint}")


def _default_at(cls: Any, keys: list[str]) -> Any:
    """The default value of the field at path `keys` inside dataclass `cls` (the enclosing fields' own
    defaults first, as `_build` fills a partial section), or _MISSING when there is none."""
    tp, default = cls, _MISSING
    for k in keys:
        if get_origin(tp) in (Union, types.UnionType):  # Optional[X] -> X
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else Any
        origin = get_origin(tp)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            f = next((f for f in dataclasses.fields(tp) if f.init and f.name == k), None)
            if f is None:
                return _MISSING
            if dataclasses.is_dataclass(default) and not isinstance(default, type):
                default = getattr(default, k)
            elif f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = _MISSING
            try:
                tp = get_type_hints(tp).get(k, Any)
            except Exception:  # an unresolvable annotation: no type to go deeper by
                tp = Any
        elif origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
            args = get_args(tp)
            tp = args[0] if args else Any
            try:
                default = default[int(k)] if isinstance(default, (list, tuple)) else _MISSING
            except (ValueError, IndexError):
                default = _MISSING
        elif origin is dict or tp is dict:
            args = get_args(tp)
            tp = args[1] if args else Any
            default = default.get(k, _MISSING) if isinstance(default, dict) else _MISSING
        else:
            return _MISSING
    return default


def _index(k: str, node: list, keys: list[str]) -> int:
    try:
        i = int(k)
    except ValueError:
        raise ConfigError(f"{'.'.join(keys)}: {k!r} is not a list index") from None
    if not -len(node) <= i < len(node):
        raise ConfigError(f"{'.'.join(keys)}: index {i} out of range (list has {len(node)} items)")
    return i


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping.

    NOTE: PyYAML keeps the last value of a repeated key without a word (YAML itself requires unique keys): a
    second `optim:` section replaced the first, and its `lr` was silently the default. Keys brought in by a
    merge (`<<: *base`) may still be overridden, as YAML intends.
    """

    def flatten_mapping(self, node):
        # NOTE: checked here, once per node, before PyYAML flattens the node's merges into it in place (the
        # merged keys go in front of its own): an anchored mapping that overrides a key of its own merge
        # (`base: &b {<<: *common, lr: 1}`) was flattened by a shallower `<<: *b` before it was constructed,
        # and then held `lr` twice: a false "duplicate key" (construct_mapping calls this first).
        checked = self.__dict__.setdefault("_unique_checked", {})
        if id(node) not in checked:
            checked[id(node)] = node  # kept alive: an id is never reused while the document loads
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: SafeLoader's own error says so
                    continue
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first.line + 1})", key_node.start_mark)
        super().flatten_mapping(node)


def _yaml_error(e: yaml.YAMLError) -> str:
    """One line: `line L, column C: what` (PyYAML's own message spans lines and names '<unicode string>')."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    what = "; ".join(x for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
    return (f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else "") + what


def load_yaml(text: str):
    """YAML text -> Python values, as yaml.safe_load, but a key repeated in a mapping is a yaml.YAMLError."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except UnicodeDecodeError as e:  # a config saved as GBK (Chinese comments) was a traceback
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_error(e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def from_dict(cls: type[T], data: dict, overrides: typing.Iterable[str] = (), source: str | None = None) -> T:
    """Build `cls` from a plain dict (+ overrides). Errors are prefixed with `source` (a file name) when given."""
    data = apply_overrides(dict(data), overrides, cls)
    try:
        return _build(cls, data, "")
    except ConfigError as e:
        if source:
            raise ConfigError(f"{source}: {e}") from None
        raise


def load_config(cls: type[T], path: str | Path | None, overrides: typing.Iterable[str] = ()) -> T:
    """Read YAML at `path` (or start from defaults when None), apply `--set` overrides, build `cls`."""
    data = read_yaml(path) if path is not None else {}
    return from_dict(cls, data, overrides, source=str(path) if path is not None else None)


def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain YAML/JSON-friendly values (Paths become strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True)
