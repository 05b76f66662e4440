"""Parquet: a chat source (as a text source) converts only the columns its fields read. Before, every column
of every batch went through to_pylist: each image of a multimodal file became Python bytes, and a value in a
column no field reads (a date past year 9999) rejected its row."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader

ROWS = 4
BAD = 3  # the row whose unread date is past year 9999
YEAR_10000 = 253_402_300_800  # seconds since 1970: 10000-01-01, which datetime cannot hold


def reader(**src) -> SourceReader:
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["x"], **src}]})
    return SourceReader(cfg.sources[0], cfg)


def unread() -> dict:
    """Columns no field reads: image bytes, and a date that does not convert to Python in row BAD."""
    return {"image": pa.array([b"\x89PNG" + bytes(64)] * ROWS, pa.binary()),
            "crawled": pa.array([0] * (BAD - 1) + [YEAR_10000] + [0] * (ROWS - BAD), pa.timestamp("s"))}


def read(path, monkeypatch, **src):
    """(items as (line, doc, reason), the columns the reader asked pyarrow for)."""
    asked = []
    iter_batches = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        asked.append(kwargs.get("columns"))
        return iter_batches(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    got = [(it.line, it.doc, it.reason) for it in reader(**src).read_file(path)]
    return got, asked


def u(i):
    return {"role": "user", "content": f"问 {i}"}


def a(i):
    return {"role": "assistant", "content": f"答 {i}"}


N = range(1, ROWS + 1)
CASES = {
    # the layout's default names; `history` and `system` are read though optional
    "alpaca": ({"chat_layout": "alpaca"},
               {"instruction": [f"问 {i}" for i in N], "output": [f"答 {i}" for i in N],
                "system": ["你是助手"] * ROWS, "history": pa.array([[]] * ROWS, pa.list_(pa.list_(pa.string())))},
               ["instruction", "output", "system", "history"],
               [[{"role": "system", "content": "你是助手"}, u(i), a(i)] for i in N]),
    # renamed: a nested struct field (its top column) and a column whose name holds the dot
    "alpaca_fields": ({"chat_layout": "alpaca",
                       "fields": {"instruction": "q", "output": "meta.answer", "system": "sys.prompt"}},
                      {"q": [f"问 {i}" for i in N], "meta.answer": [f"答 {i}" for i in N],
                       "sys": [{"prompt": "简短回答", "lang": "zh"}] * ROWS, "meta": ["unused"] * ROWS},
                      ["q", "meta.answer", "sys", "meta"],
                      [[{"role": "system", "content": "简短回答"}, u(i), a(i)] for i in N]),
    "sharegpt_fields": ({"chat_layout": "sharegpt",
                         "fields": {"conversations": "convs", "role": "speaker", "content": "text", "system": "sp"}},
                        {"convs": [[{"speaker": "human", "text": f"问 {i}"}, {"speaker": "gpt", "text": f"答 {i}"}]
                                   for i in N],
                         "sp": ["你是助手"] * ROWS, "conversations": [[]] * ROWS},
                        ["convs", "sp"],
                        [[{"role": "system", "content": "你是助手"}, u(i), a(i)] for i in N]),
    "openai_system": ({"chat_layout": "openai", "system": "默认提示"},
                      {"messages": [[{"role": "user", "content": f"问 {i}"}, {"role": "assistant", "content": f"答 {i}"}]
                                    for i in N], "system": ["unused"] * ROWS},
                      ["messages"],
                      [[{"role": "system", "content": "默认提示"}, u(i), a(i)] for i in N]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_chat_source_converts_only_its_fields_columns(tmp_path, monkeypatch, case):
    src, columns, want_read, want_docs = CASES[case]
    p = tmp_path / "c.parquet"
    pq.write_table(pa.table({**unread(), **columns}), p)
    got, asked = read(p, monkeypatch, kind="chat", **src)
    assert asked == [want_read]  # (before: None, every column)
    # before: row BAD was bad_field_type "column 'crawled': a value does not convert"
    assert got == [(i, want_docs[i - 1], None) for i in N]


def test_a_missing_chat_column_is_still_missing_field(tmp_path, monkeypatch):
    p = tmp_path / "c.parquet"
    pq.write_table(pa.table({**unread(), "instruction": [f"问 {i}" for i in N]}), p)
    got, asked = read(p, monkeypatch, kind="chat", chat_layout="alpaca")
    assert asked == [["instruction"]]
    assert got == [(i, None, "missing_field") for i in N]
    bad = [it.detail for it in reader(kind="chat").read_file(p)]
    assert bad == ["no field 'output'"] * ROWS


def test_a_text_source_with_no_such_column_reads_none(tmp_path, monkeypatch):
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({**unread(), "body": [f"正文 {i}" for i in N]}), p)
    got, asked = read(p, monkeypatch, kind="text")
    assert asked == [[]]
    assert got == [(i, None, "missing_field") for i in N]


def test_a_record_path_reads_its_first_steps_column(tmp_path, monkeypatch):
    p = tmp_path / "r.parquet"
    paragraphs = [[{"text": f"段 {i}.1"}, {"text": f"段 {i}.2"}] for i in N]
    pq.write_table(pa.table({**unread(), "paragraphs": paragraphs, "text": ["unused"] * ROWS}), p)
    got, asked = read(p, monkeypatch, kind="text", record_path="paragraphs[*]")
    assert asked == [["paragraphs"]]  # (before: None, and row BAD's unread date rejected its two paragraphs)
    assert got == [(i, f"段 {i}.{k}", None) for i in N for k in (1, 2)]
