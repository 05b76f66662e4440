"""A JSON number of more than 4,300 digits (Python's int() cap) is a value like any other: before, the
ValueError json.loads raised for it ended the reading of the file, so the rest of a JSONL file (or a whole
JSON file) was one unreadable_file rejection."""

from __future__ import annotations

import gzip

import pytest

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader

BIG = "1" + "0" * 5000  # a 5,001-digit integer


def items(path, text_field: str = "text"):
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["x"], "text_field": text_field}]})
    return [(it.line, it.doc, it.reason) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


LINES = ['{"text": "第一"}', '{"text": "第二", "n": %s}' % BIG, '{"text": "第三"}']


@pytest.mark.parametrize("name, data, order", [
    ("a.jsonl", "\n".join(LINES).encode(), [0, 1, 2]),
    ("a.jsonl.gz", gzip.compress("\n".join(LINES).encode()), [0, 1, 2]),
    ("a.json", ("[" + ", ".join(LINES) + "]").encode(), [0, 1, 2]),  # a JSON array, read whole
    ("b.json", "\n".join(LINES[::-1]).encode(), [2, 1, 0]),  # JSONL named .json, the big number on line 2
    ("c.json", "\n".join(LINES[1:] + LINES[:1]).encode(), [1, 2, 0]),  # ... on line 1 (how the file is told)
], ids=["jsonl", "jsonl.gz", "json-array", "json-of-jsonl", "json-of-jsonl-first-line"])
def test_a_huge_integer_in_a_field_loses_no_record(tmp_path, name, data, order):
    p = tmp_path / name
    p.write_bytes(data)
    docs = ["第一", "第二", "第三"]
    assert items(p) == [(line, docs[k], None) for line, k in enumerate(order, 1)]


def test_a_huge_integer_as_the_text_field_is_a_bad_field_type(tmp_path):
    p = tmp_path / "n.jsonl"
    p.write_text('{"n": %s}\n{"n": "text"}\n' % BIG, encoding="utf-8")
    assert items(p, text_field="n") == [(1, None, "bad_field_type"), (2, "text", None)]
