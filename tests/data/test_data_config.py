"""`steel data prepare` config validation: errors name the field and the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from steel.config import ConfigError, from_dict, load_config
from steel.data.config import DataConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("setting", [{"chat_layout": "sharegpt"}, {"chat_layout": "alpaca"},
                                     {"fields": {"instruction": "q"}}, {"system": "be brief"}])
def test_chat_settings_on_a_text_source_are_refused(setting):
    raw = {"sources": [{"name": "a", "path": ["a.jsonl"]}, {"name": "wiki", "path": ["w.jsonl"], **setting}]}
    name = next(iter(setting))
    with pytest.raises(ConfigError, match=rf"^sources\[1\]\.{name}: only for kind: chat \(source 'wiki' is kind: text\)"):
        from_dict(DataConfig, raw)


def test_chat_layout_defaults_to_alpaca_for_chat_sources():
    cfg = from_dict(DataConfig, {"sources": [{"name": "c", "path": ["c.json"], "kind": "chat"},
                                             {"name": "t", "path": ["t.jsonl"]}]})
    assert cfg.sources[0].chat_layout == "alpaca" and cfg.sources[1].chat_layout is None


def test_shipped_data_configs_load():
    for path in sorted((REPO / "configs" / "data").glob("*.yaml")):
        load_config(DataConfig, path)
