"""Config errors found by using `steel train` as documented: every one names the offending field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from steel.config import ConfigError, from_dict, load_config
from steel.train.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("item, field", [
    ("model.config.hidden_size=32", "model.config"),  # model.config is the name 'tiny' in the YAML
    ("optim.lr.x=1", "optim.lr"),  # a scalar of the YAML
    ("optim.lr.x.y=1", "optim.lr"),  # deeper below a scalar
    ("optim.betas.0.x=1", "optim.betas.0"),  # below a list item that is a number
])
def test_set_below_a_scalar_names_the_field(item, field):
    """`--set a.b=v` where `a` is a string or number was a TypeError traceback ('str' object does not
    support item assignment), not one `steel: error:` line naming the field."""
    data = {"model": {"config": "tiny"}, "optim": {"lr": 1e-3, "betas": [0.9, 0.95]}}
    with pytest.raises(ConfigError, match="^" + re.escape(field) + ": "):
        from_dict(TrainConfig, data, [item])


def test_set_below_a_scalar_of_the_shipped_config_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model\.config: .*'tiny'"):
        load_config(TrainConfig, CONFIGS / "train" / "tiny-cpu.yaml", ["model.config.hidden_size=32"])


@pytest.mark.parametrize("item, message", [
    ("optim.decay_steps=-3", r"^optim\.decay_steps: must be >= 0, got -3$"),  # named optim.warmup_steps
    ("optim.warmup_steps=-1", r"^optim\.warmup_steps: must be >= 0, got -1$"),
    ("optim.lr=0", r"^optim\.lr: must be > 0, got 0\.0$"),  # named optim.min_lr
    ("optim.min_lr=1", r"^optim\.min_lr: need 0 <= min_lr <= lr \(0\.0003\), got 1\.0$"),
    ("data.weights.zh_wiki=-1", r"^data\.weights\.zh_wiki: must be >= 0, got -1\.0$"),
])
def test_optim_and_data_errors_name_their_own_field(item, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, {}, [item])


def test_zero_weight_is_accepted():
    """Weight 0 leaves a source out (its chunks give no sample); only a negative one is refused."""
    assert from_dict(TrainConfig, {}, ["data.weights.zh_wiki=0"]).data.weights == {"zh_wiki": 0.0}
