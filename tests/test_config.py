"""The typed config machinery: YAML -> dataclasses, overrides, errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from steel.config import ConfigError, apply_overrides, dump_yaml, from_dict, load_config


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10
    name: Optional[str] = None


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    kind: Literal["a", "b"] = "a"
    items: list[Inner] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    flag: bool = False
    out: Path = Path("out")


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  lr: 3e-4\nitems:\n  - {steps: 2}\n  - {steps: 3, name: x}\nweights: {zh: 0.8}\n")
    cfg = load_config(Outer, p, ["inner.steps=7", "items.1.steps=9", "kind=b", "flag=true", "out=/tmp/x"])
    assert cfg.inner.lr == pytest.approx(3e-4)  # YAML 1.1 reads 3e-4 as a string; accepted for floats
    assert cfg.inner.steps == 7
    assert [i.steps for i in cfg.items] == [2, 9]
    assert cfg.items[1].name == "x"
    assert cfg.weights == {"zh": 0.8}
    assert cfg.kind == "b" and cfg.flag is True and cfg.out == Path("/tmp/x")
    # the resolved config round-trips through YAML
    assert from_dict(Outer, __import__("yaml").safe_load(dump_yaml(cfg))) == cfg


@pytest.mark.parametrize(
    "data, overrides, message",
    [
        ({"inner": {"steps": "ten"}}, [], "inner.steps: expected an integer"),
        ({"inner": {"lrr": 1}}, [], "inner.lrr: unknown field"),
        ({}, ["kind=c"], "kind: 'c' is not one of"),
        ({"items": [{"steps": 1}, {"steps": 1.5}]}, [], "items[1].steps"),
        ({"weights": {"zh": "much"}}, [], "weights.zh: expected a number"),
        ({"flag": "yes please"}, [], "flag: expected true/false"),
        ({"items": [{"steps": 1}]}, ["items.3.steps=1"], "index 3 out of range"),
        ({}, ["novalue"], "expected KEY=VALUE"),
        # NaN passed every `< 0` check and reached manifest.json as a bare NaN (not JSON)
        ({}, ["weights.zh=.nan"], "weights.zh: expected a finite number, got nan"),
        ({}, ["inner.lr=.inf"], "inner.lr: expected a finite number, got inf"),
        ({"inner": {"lr": "-inf"}}, [], "inner.lr: expected a finite number"),
    ],
)
def test_errors_name_the_field(data, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_dict(Outer, data, overrides)


def test_error_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("inner: {steps: x}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: inner\.steps"):
        load_config(Outer, p)
    p.write_text("inner: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_config(Outer, p)


def test_required_field():
    @dataclass
    class Req:
        path: str

    with pytest.raises(ConfigError, match="path: required field is missing"):
        from_dict(Req, {})


def test_apply_overrides_creates_nested():
    assert apply_overrides({}, ["a.b.c=1", "a.d=[1, 2]"]) == {"a": {"b": {"c": 1}, "d": [1, 2]}}


@dataclass
class Tuned:
    # a section whose defaults differ from its class's (as SftConfig.optim vs OptimSection)
    inner: Inner = field(default_factory=lambda: Inner(lr=2e-5, steps=30, name="sft"))
    nested: Outer = field(default_factory=lambda: Outer(inner=Inner(steps=99), kind="b"))


def test_partial_section_keeps_the_fields_own_defaults():
    cfg = from_dict(Tuned, {"inner": {"lr": 1e-3}, "nested": {"inner": {"lr": 0.5}}})
    assert cfg.inner == Inner(lr=1e-3, steps=30, name="sft")  # was Inner(lr=1e-3, steps=10, name=None)
    assert cfg.nested.kind == "b" and cfg.nested.inner == Inner(lr=0.5, steps=99)
    assert from_dict(Tuned, {}).inner == Inner(lr=2e-5, steps=30, name="sft")
    with pytest.raises(ConfigError, match=r"inner\.bogus: unknown field"):
        from_dict(Tuned, {"inner": {"bogus": 1}})


def test_sft_partial_optim_keeps_sft_defaults():
    from steel.sft.train import SftConfig

    o = from_dict(SftConfig, {"init": "x", "optim": {"lr": 1e-3}}).optim
    assert (o.lr, o.weight_decay, o.min_lr, o.warmup_steps) == (1e-3, 0.0, 2e-6, 30)
