"""SFT dataset settings that were taken without a word: a misspelt `fields` key or `format`, a .txt file."""

from __future__ import annotations

import json

import pytest

from steel.config import ConfigError, from_dict
from steel.sft import data as D

RECORDS = [{"instruction": f"问题{i}", "context": f"材料{i}", "output": f"回答{i}"} for i in range(3)]


def _build(tmp_path, dataset: dict) -> list:
    (tmp_path / "chat.json").write_text(json.dumps(RECORDS, ensure_ascii=False), encoding="utf-8")
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": [{"name": "chat", **dataset}]})
    return D.build_conversations(cfg, {})


def test_renamed_field_is_read(tmp_path):
    # The reference: `input` renamed to the records' `context` joins the instruction after a newline.
    mix = _build(tmp_path, {"path": ["chat.json"], "fields": {"input": "context"}})
    assert sorted(m[0]["content"] for _, m in mix) == [f"问题{i}\n材料{i}" for i in range(3)]


@pytest.mark.parametrize(
    "fields, match",
    [
        # `inputs` for `input`: the layout read its default `input` (absent), every context was left out
        ({"inputs": "context"}, r"datasets\[0\]\.fields\.inputs: not a field of chat_layout 'alpaca'"),
        # an empty part finds nothing in any record: the optional input was silently empty
        ({"input": "context."}, r"datasets\[0\]\.fields\.input: 'context\.' is not a dotted field name"),
    ],
)
def test_a_bad_fields_entry_is_an_error_naming_it(tmp_path, fields, match):
    with pytest.raises(ConfigError, match=match):
        _build(tmp_path, {"path": ["chat.json"], "fields": fields})


def test_a_misspelt_format_is_an_error_naming_it(tmp_path):
    # It was a KeyError traceback from the reader, after the model had been loaded.
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.format: 'jsnl' is not one of"):
        _build(tmp_path, {"path": ["chat.json"], "format": "jsnl"})


def test_a_text_file_is_an_error_naming_it(tmp_path):
    # A .txt was read as one plain string and crashed normalization (TypeError: string indices ...).
    (tmp_path / "notes.txt").write_text("问题\n回答\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^data\.datasets\[0\]\.path: .*notes\.txt is a text file"):
        _build(tmp_path, {"path": ["notes.txt"]})
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.format: 'txt' is not one of"):
        _build(tmp_path, {"path": ["notes.txt"], "format": "txt"})
