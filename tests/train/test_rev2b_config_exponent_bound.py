"""An integer field written with an exponent (`max_steps: 1e6`, 0235409) is made exactly, through Decimal:
`1e1000000000` (a typo, a pasted float) built a billion-digit integer, minutes of CPU and GBs of memory
before any check (a run that hangs at its config), and `1e5000` went on as a 5001-digit max_steps. Such a
value is refused naming the field, as the integers YAML itself reads are bounded (Python's 4300 digits)."""

import time

import pytest

from steel.config import ConfigError, load_config
from steel.train.config import TrainConfig


@pytest.mark.parametrize("value", ["1e5000", "1e1000000000", "-1e999999999"])
def test_an_exponent_integer_too_large_to_be_a_setting_is_refused_at_once(value):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="max_steps: expected an integer"):
        load_config(TrainConfig, None, [f"max_steps={value}"])
    assert time.perf_counter() - t0 < 5


def test_large_but_reasonable_exponent_integers_still_pass():
    assert load_config(TrainConfig, None, ["max_steps=1e18"]).max_steps == 10**18
    assert load_config(TrainConfig, None, ["max_steps=1.5e3"]).max_steps == 1500
