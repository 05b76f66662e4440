"""Config mistakes that used to pass silently (or crash without naming the field)."""

from __future__ import annotations

import pytest

from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig

SOURCES = [{"name": "web", "path": ["w.jsonl"]}, {"name": "qa", "path": ["q.jsonl"], "kind": "chat"}]


@pytest.mark.parametrize("filters, message", [
    # a list as the name crashed with "unhashable type: 'list'" (no field named)
    ([{"name": ["length"]}], r"^filters\[0\]\.name: unknown filter \['length'\]"),
    # an empty list applied the filter to no document at all: a filter that silently did nothing
    ([{"name": "length", "sources": []}], r"^filters\[0\]\.sources: empty list"),
    ([{"name": "length", "kinds": []}], r"^filters\[0\]\.kinds: empty list"),
    # `qa` is a chat source: `sources: [qa]` + `kinds: [text]` selects nothing
    ([{"name": "length", "sources": ["qa"], "kinds": ["text"]}],
     r"^filters\[0\]\.kinds: none of the sources \['qa'\] is of kind \['text'\]"),
])
def test_filter_that_would_do_nothing_or_crash_is_a_config_error(filters, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(DataConfig, {"sources": SOURCES, "filters": filters})


def test_filter_selecting_some_source_is_accepted():
    cfg = from_dict(DataConfig, {"sources": SOURCES, "filters": [
        {"name": "length", "sources": ["qa", "web"], "kinds": ["text"]},
        {"name": "length", "kinds": ["chat"], "label": "chat_length"}]})
    assert len(cfg.filters) == 2


def test_negative_dedup_seed_is_a_config_error():
    # numpy's default_rng refuses a negative seed: this crashed in every worker at startup
    with pytest.raises(ConfigError, match=r"^dedup\.seed: must be >= 0, got -1"):
        from_dict(DataConfig, {"sources": SOURCES, "dedup": {"seed": -1}})
