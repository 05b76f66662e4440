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


@dataclass
class WithList:
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    inner: Inner = field(default_factory=Inner)
    items: list[Inner] = field(default_factory=lambda: [Inner(steps=1), Inner(steps=2)])


@dataclass
class HasListSection:
    optim: WithList = field(default_factory=WithList)
    maybe: Optional[WithList] = None


def test_override_list_item_of_an_unset_list_uses_the_default():
    # `--set optim.betas.1=0.99` with no `betas` (or no `optim`) in the file: the default list, one item changed
    # (was "optim.betas: expected a list, got dict {'1': 0.99}")
    assert from_dict(HasListSection, {}, ["optim.betas.1=0.99"]).optim.betas == [0.9, 0.99]
    assert from_dict(HasListSection, {"optim": {"inner": {"lr": 0.5}}}, ["optim.betas.0=0.8"]).optim.betas == [0.8, 0.95]
    assert from_dict(WithList, {}, ["betas.-1=0.5"]).betas == [0.9, 0.5]
    cfg = from_dict(WithList, {}, ["items.1.name=x"])
    assert cfg.items == [Inner(steps=1), Inner(steps=2, name="x")]
    cfg = from_dict(HasListSection, {}, ["maybe.betas.1=0.7"])  # an Optional section: its class's defaults
    assert cfg.maybe.betas == [0.9, 0.7] and cfg.maybe.items[0] == Inner(steps=1)
    # a list in the file is the one indexed; the default list is not touched
    assert from_dict(WithList, {"betas": [0.1, 0.2]}, ["betas.1=0.3"]).betas == [0.1, 0.3]
    assert WithList().betas == [0.9, 0.95]
    # an index past the default list is still an error naming the field
    with pytest.raises(ConfigError, match=r"optim\.betas\.2: index 2 out of range \(list has 2 items\)"):
        from_dict(HasListSection, {}, ["optim.betas.2=0.5"])
    with pytest.raises(ConfigError, match=r"optim\.betas\.x: 'x' is not a list index"):
        from_dict(HasListSection, {}, ["optim.betas.x=0.5"])


def test_override_list_item_of_the_train_config_default():
    from steel.train.config import TrainConfig

    assert from_dict(TrainConfig, {}, ["optim.betas.1=0.99"]).optim.betas == [0.9, 0.99]
