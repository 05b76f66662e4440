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


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_dedup_seed_outside_64_bits_is_a_config_error(seed):
    # The MinHash permutations start from the seed as a uint64: another value crashed every worker at startup
    with pytest.raises(ConfigError, match=rf"^dedup\.seed: must be in \[0, 2\*\*64\), got {seed}"):
        from_dict(DataConfig, {"sources": SOURCES, "dedup": {"seed": seed}})
    assert from_dict(DataConfig, {"sources": SOURCES, "dedup": {"seed": 2**64 - 1}}).dedup.seed == 2**64 - 1


@pytest.mark.parametrize("filters, message", [
    # a percentage typed for a share named `min` (whose value was fine) instead of `max`
    ([{"name": "char_ratio", "max": 50}], r"^filters\[0\]\.max: must be in \[0, 1\], got 50.0"),
    ([{"name": "char_ratio", "min": -0.1}], r"^filters\[0\]\.min: must be in \[0, 1\], got -0.1"),
    ([{"name": "char_ratio", "min": 0.6, "max": 0.4}], r"^filters\[0\]\.max: must be >= min \(0.6\), got 0.4"),
    ([{"name": "length", "min_chars": 10, "max_chars": 5}], r"^filters\[0\]\.max_chars: must be >= min_chars \(10\), got 5"),
    ([{"name": "length", "min_chars": -1}], r"^filters\[0\]\.min_chars: need 0 <= min_chars, got -1"),
])
def test_range_errors_name_the_field_that_is_out_of_range(filters, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(DataConfig, {"sources": SOURCES, "filters": filters})


@pytest.mark.parametrize("source, message", [
    # an empty or malformed dotted name finds nothing in any record: every record of the source was
    # rejected as missing_field, the whole source lost to a config typo
    ({"name": "w", "path": ["w.jsonl"], "text_field": ""}, r"^sources\[0\]\.text_field: '' is not a dotted field name"),
    ({"name": "w", "path": ["w.jsonl"], "text_field": "meta..body"},
     r"^sources\[0\]\.text_field: 'meta..body' is not a dotted field name"),
    ({"name": "q", "path": ["q.jsonl"], "kind": "chat", "fields": {"instruction": ""}},
     r"^sources\[0\]\.fields\.instruction: '' is not a dotted field name"),
])
def test_empty_field_names_are_config_errors(source, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(DataConfig, {"sources": [source]})
