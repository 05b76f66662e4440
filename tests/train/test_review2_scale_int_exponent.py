"""Integer fields written with an exponent (`max_steps: 1e6`), as float fields already take them.

PyYAML (YAML 1.1) reads `1e6` without a dot as the string '1e6': `optim.lr: 3e-4` was accepted (float fields
take numeric strings), `max_steps: 1.0e6` too (a float with an integer value), but `max_steps: 1e6`, the way
a 1M-step run is usually written, was refused as "expected an integer, got '1e6'".
"""

from pathlib import Path

import pytest

from steel.config import ConfigError, load_config
from steel.train.config import TrainConfig

STEEL_1B = Path(__file__).resolve().parents[2] / "configs" / "train" / "steel-1b.yaml"


def test_exponent_integers_from_set_and_from_yaml(tmp_path):
    cfg = load_config(TrainConfig, STEEL_1B, ["max_steps=1e6", "checkpoint.every=2e3", "optim.warmup_steps=2.5e3"])
    assert (cfg.max_steps, cfg.checkpoint.every, cfg.optim.warmup_steps) == (1_000_000, 2000, 2500)
    assert all(type(v) is int for v in (cfg.max_steps, cfg.checkpoint.every, cfg.optim.warmup_steps))
    path = tmp_path / "t.yaml"
    path.write_text("max_steps: 1e6\nlog: {every: 1E1}\nanneal: {step: 9.5e5, dirs: [x]}\n")
    cfg = load_config(TrainConfig, path)
    assert (cfg.max_steps, cfg.log.every, cfg.anneal.step) == (1_000_000, 10, 950_000)
    # exact, not through a float: 2**53 + 1 has no float
    assert load_config(TrainConfig, None, ["max_steps=9007199254740993e0"]).max_steps == 2**53 + 1


@pytest.mark.parametrize("value", ["1.5e0", "ten", "1e6x", "inf", "nan", "1,000"])
def test_non_integers_are_still_refused_naming_the_field(value):
    with pytest.raises(ConfigError, match=r"^.*steel-1b\.yaml: max_steps: expected an integer, got "):
        load_config(TrainConfig, STEEL_1B, [f"max_steps={value}"])


def test_a_negative_exponent_count_is_refused_by_the_fields_own_check():
    with pytest.raises(ConfigError, match="checkpoint.every: must be >= 1"):
        load_config(TrainConfig, STEEL_1B, ["checkpoint.every=-1e3"])
