"""An unknown top-level field that is a field of one of the config's sections names it (session 16, K).

`steel sft ... --set self_cognition.count=20` (it lives under `data:`) and `steel train ... --set lr=1e-3` (under
`optim:`) said only `self_cognition: unknown field (known: allow_tokenizer_change, checkpoint, data, ...)`."""

import pytest
import yaml

from steel.config import ConfigError, load_config
from steel.sft.train import SftConfig
from steel.train.config import TrainConfig


def _cfg(tmp_path, body: dict):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(body))
    return p


@pytest.mark.parametrize("key, section", [("lr", "optim"), ("seq_len", "data"), ("every", "checkpoint or log")])
def test_train_field_of_a_section_is_named(tmp_path, key, section):
    p = _cfg(tmp_path, {"data": {"dirs": ["d"]}})
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, p, [f"{key}=1"])
    msg = str(e.value)
    assert f"{key}: unknown field (" in msg
    want = " or ".join(f"{s}.{key}" for s in section.split(" or "))
    assert f"did you mean {want}?" in msg, msg
    assert "known: " in msg  # the list stays


def test_sft_self_cognition_under_data(tmp_path):
    p = _cfg(tmp_path, {"init": "run", "data": {"datasets": [{"name": "a", "path": ["a.json"]}]}})
    with pytest.raises(ConfigError) as e:
        load_config(SftConfig, p, ["self_cognition.count=20"])
    assert "self_cognition: unknown field (did you mean data.self_cognition?; known: " in str(e.value), str(e.value)


def test_a_field_of_no_section_has_no_hint(tmp_path):
    p = _cfg(tmp_path, {"data": {"dirs": ["d"]}})
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, p, ["bogus=1"])
    assert "bogus: unknown field (known: " in str(e.value) and "did you mean" not in str(e.value)
