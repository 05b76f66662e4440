"""A parquet file with a column name twice (pandas and Arrow write such files) was read as the last of them,
without a word; a CSV header with a read column twice is refused (test_sD_inputs). Parquet is now refused the same
way, as the file's one unreadable_file naming the column."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader


def _items(path, **extra):
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)], **extra}]})
    return [(it.line, it.doc, it.reason, it.detail) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


def _write(path, names, columns):
    pq.write_table(pa.Table.from_arrays([pa.array(c) for c in columns], names=names), path)


def test_a_parquet_file_whose_text_column_is_duplicated_is_refused(tmp_path):
    path = tmp_path / "dup.parquet"
    _write(path, ["text", "id", "text"], [["first", "a"], [1, 2], ["second", "b"]])
    # was [(1, "second", None, ""), (2, "b", None, "")]: the last 'text' column, silently
    assert _items(path) == [(0, None, "unreadable_file", "parquet schema: column 'text' appears 2 times, so which one "
                                                        "to read is ambiguous; rename one")]


def test_a_chat_source_whose_field_column_is_duplicated_is_refused(tmp_path):
    path = tmp_path / "chat.parquet"
    _write(path, ["instruction", "output", "output"], [["what is steel"], ["an alloy"], ["a metal"]])
    assert [(line, reason) for line, _, reason, _ in _items(path, kind="chat")] == [(0, "unreadable_file")]


def test_a_duplicated_column_the_source_does_not_read_is_no_matter(tmp_path):
    path = tmp_path / "extra.parquet"
    _write(path, ["id", "text", "id"], [[1, 2], ["first", "second"], [3, 4]])
    assert _items(path) == [(1, "first", None, ""), (2, "second", None, "")]
