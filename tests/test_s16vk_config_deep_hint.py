"""An unknown field that is a field of a section deeper than one level below names it too (session 16, review VK
of 5b353c8): `steel sft ... --set count=20` (it lives under `data.self_cognition:`) and `steel data prepare ...
--set weight=2` (a field of each `sources:` item) got only the list of that level's fields; 5b353c8 named the
fields of the sections one level below only (`--set self_cognition.count=20`: `data.self_cognition`)."""

import pytest
import yaml

from steel.config import ConfigError, load_config
from steel.data.config import DataConfig
from steel.sft.train import SftConfig
from steel.train.config import TrainConfig


def _cfg(tmp_path, body: dict):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(body))
    return p


SFT = {"init": "run", "data": {"datasets": [{"name": "a", "path": ["a.json"]}]}}


@pytest.mark.parametrize("key, want", [
    ("maker", "data.self_cognition.maker"),  # two levels down
    # in a list's items and in a section: every place, a list item by its index
    ("count", "data.datasets.<i>.count or data.self_cognition.count"),
    ("name", "data.datasets.<i>.name or data.self_cognition.name"),
])
def test_sft_field_two_levels_down_is_named(tmp_path, key, want):
    with pytest.raises(ConfigError) as e:
        load_config(SftConfig, _cfg(tmp_path, SFT), [f"{key}=1"])
    assert f"{key}: unknown field (did you mean {want}?; known: " in str(e.value), str(e.value)


def test_field_of_a_list_item_is_named_with_an_index(tmp_path):
    p = _cfg(tmp_path, {"root": ".", "tokenizer": "t", "sources": [{"name": "a", "path": ["a.jsonl"]}]})
    with pytest.raises(ConfigError) as e:
        load_config(DataConfig, p, ["weight=2"])
    assert "weight: unknown field (did you mean sources.<i>.weight?; known: " in str(e.value), str(e.value)


def test_below_a_section_the_path_starts_there(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(SftConfig, _cfg(tmp_path, SFT), ["data.count=20"])
    want = "data.count: unknown field (did you mean data.datasets.<i>.count or data.self_cognition.count?; known: "
    assert want in str(e.value), str(e.value)


def test_one_level_down_is_unchanged(tmp_path):
    # 5b353c8's cases: the sections one level below, alphabetical
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, _cfg(tmp_path, {"data": {"dirs": ["d"]}}), ["every=1"])
    assert "every: unknown field (did you mean checkpoint.every or log.every?; known: " in str(e.value)
