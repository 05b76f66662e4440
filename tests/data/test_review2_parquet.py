"""Parquet: a text source converts its text column alone; a value that does not convert to Python (a
date past year 9999) rejects its row, with the row number, instead of crashing the run."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader

ROWS = 1500  # more than one record batch (1024 rows)
BAD = 1200  # the row whose date is past year 9999
YEAR_10000 = 253_402_300_800  # seconds since 1970: 10000-01-01, which datetime cannot hold


def reader(**src) -> SourceReader:
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["x"], **src}]})
    return SourceReader(cfg.sources[0], cfg)


def items(r: SourceReader, path):
    return [(it.line, it.doc, it.reason) for it in r.read_file(path)]


def write(path, **extra) -> None:
    dates = pa.array([0] * (BAD - 1) + [YEAR_10000] + [0] * (ROWS - BAD), pa.timestamp("s"))
    table = pa.table({"text": [f"正文 {i}" for i in range(1, ROWS + 1)],
                      "meta": [{"body": f"body {i}", "lang": "zh"} for i in range(1, ROWS + 1)],
                      "crawled": dates, **extra})
    pq.write_table(table, path)


def test_an_unused_column_that_does_not_convert_loses_nothing(tmp_path):
    # Before: to_pylist over every column raised OverflowError out of the reader, which ended the run.
    p = tmp_path / "t.parquet"
    write(p)
    assert items(reader(), p) == [(i, f"正文 {i}", None) for i in range(1, ROWS + 1)]
    assert items(reader(text_field="meta.body"), p) == [(i, f"body {i}", None) for i in range(1, ROWS + 1)]
    # a column the file does not have: every row counted as before
    assert items(reader(text_field="body"), p) == [(i, None, "missing_field") for i in range(1, ROWS + 1)]


def test_a_value_that_does_not_convert_rejects_its_row_only(tmp_path):
    # The bad date is in a column the source reads (the struct its `input` field is in): that row alone is
    # rejected. (An unread column, as `crawled` is here, is never converted: test_s11p_parquet_columns.py.)
    p = tmp_path / "c.parquet"
    dates = pa.array([0] * (BAD - 1) + [YEAR_10000] + [0] * (ROWS - BAD), pa.timestamp("s"))
    extra = pa.StructArray.from_arrays([pa.array([""] * ROWS), dates], names=["note", "crawled"])
    write(p, instruction=[f"问题 {i}" for i in range(1, ROWS + 1)], output=[f"回答 {i}" for i in range(1, ROWS + 1)],
          extra=extra)
    chat = {"kind": "chat", "chat_layout": "alpaca", "fields": {"input": "extra.note"}}
    got = items(reader(**chat), p)
    assert len(got) == ROWS and [line for line, _, _ in got] == list(range(1, ROWS + 1))
    assert [(line, reason) for line, doc, reason in got if doc is None] == [(BAD, "bad_field_type")]
    bad = [it for it in reader(**chat).read_file(p) if it.reason]
    assert bad[0].detail.startswith("column 'extra': a value does not convert"), bad[0].detail  # names it
    assert got[BAD][1] == [{"role": "user", "content": f"问题 {BAD + 1}"},
                           {"role": "assistant", "content": f"回答 {BAD + 1}"}]
