"""Tests written by a mutation audit of `steel.config` (session 15, D): each one kills a deliberate mutation
of the YAML/`--set` machinery that the rest of the suite let pass, asserting hand-written expected values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import pytest

from steel.config import ConfigError, from_dict, load_config, parse_override


@dataclass
class Knobs:
    steps: int = 10
    lr: float = 1e-3
    name: Optional[str] = None
    betas: tuple[float, float] = (0.9, 0.95)
    size: Union[int, str] = 1  # a union without None: null is no value of it


@pytest.mark.parametrize(
    "data, message",
    [
        # true is an int to Python (bool subclasses int): a YAML `steps: true` is a typo, not 1 step
        ({"steps": True}, "steps: expected an integer, got True"),
        ({"lr": False}, "lr: expected a number, got False"),
        ({"name": True}, "name: expected a string, got True"),
        # YAML 1.1 reads 15e-1 (no dot) as the string '15e-1' = 1.5: not an integer, never truncated to 1
        ({"steps": "15e-1"}, "steps: expected an integer, got '15e-1'"),
        ({"size": None}, "size: must not be null"),
    ],
)
def test_values_of_another_type_are_refused_by_field(data, message):
    with pytest.raises(ConfigError) as e:
        from_dict(Knobs, data)
    assert str(e.value) == message


def test_numbers_convert_where_exact():
    # 1e6 (a string to YAML 1.1) is exactly an integer; a number for a str field is its text
    cfg = from_dict(Knobs, {"steps": "1e6", "name": 3, "betas": [0.8, 0.99]})
    assert cfg.steps == 1_000_000 and type(cfg.steps) is int
    assert cfg.name == "3"
    assert cfg.betas == (0.8, 0.99) and type(cfg.betas) is tuple  # as the annotation says (hashable, == default)
    assert from_dict(Knobs, {}).betas == Knobs().betas


def test_set_values_parse_as_yaml_else_stay_text():
    # only the first '=' splits key from value; an empty value is the empty string (not null); text that is
    # not valid YAML is taken as it is
    assert parse_override("name=a=b") == (["name"], "a=b")
    assert parse_override("name=") == (["name"], "")
    assert parse_override("name=[x") == (["name"], "[x")
    assert parse_override("betas=[0.8, 0.9]") == (["betas"], [0.8, 0.9])
    cfg = from_dict(Knobs, {}, ["name=a=b", "steps=7"])
    assert cfg.name == "a=b" and cfg.steps == 7


def test_an_empty_yaml_file_is_the_defaults(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("# nothing set yet\n", encoding="utf-8")
    assert load_config(Knobs, p) == Knobs()


@dataclass
class Part:
    count: int = 0

    def validate(self) -> None:
        if self.count < 0:
            raise ConfigError("count: must be >= 0")


@dataclass
class Whole:
    part: Part = field(default_factory=Part)
    parts: list[Part] = field(default_factory=list)


def test_a_sections_own_check_names_the_field_by_its_whole_path():
    with pytest.raises(ConfigError) as e:
        from_dict(Whole, {"part": {"count": -1}})
    assert str(e.value) == "part.count: must be >= 0"
    with pytest.raises(ConfigError) as e:
        from_dict(Whole, {"parts": [{"count": 1}, {"count": -2}]})
    assert str(e.value) == "parts[1].count: must be >= 0"


def test_an_integer_past_the_digits_yaml_reads_is_refused():
    # NOTE: the cap is Python's int() limit on 4300 digits (what YAML's own integers can hold): int() of
    # 1e1000000000 built a billion-digit number before any check; 1e4299 is still an integer
    assert from_dict(Knobs, {"steps": "1e4299"}).steps == 10**4299
    with pytest.raises(ConfigError) as e:
        from_dict(Knobs, {"steps": "1e4300"})
    assert str(e.value) == "steps: expected an integer, got '1e4300'"


@dataclass
class Opt:
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])


@dataclass
class ModelSection:
    config: Union[str, Knobs] = "tiny"  # a preset name, or the fields themselves


@dataclass
class Run:
    # the field's own default differs from its class's (as SFT's optim does from pretraining's)
    optim: Opt = field(default_factory=lambda: Opt(betas=[0.5, 0.6]))
    model: ModelSection = field(default_factory=ModelSection)


def test_a_list_item_override_indexes_the_fields_own_default():
    assert from_dict(Run, {}, ["optim.betas.1=0.7"]).optim.betas == [0.5, 0.7]


def test_a_field_below_a_scalar_default_is_refused_with_the_preset_hint():
    with pytest.raises(ConfigError) as e:
        from_dict(Run, {}, ["model.config.steps=3"])
    assert str(e.value) == (
        "model.config: 'tiny' (its default) is a str, not a mapping or list; cannot set a field below it; "
        "a preset's fields are set with model.overrides.FIELD=VALUE"
    )
