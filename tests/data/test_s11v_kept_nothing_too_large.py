"""A source whose every record is over a size limit, or not UTF-8 (702e676's error), is told so, not to check
its fields.

Big .txt books (one document per file by default, each over `max_doc_chars`) and a GBK-encoded CSV were refused
with "check its text_field, record_path and format", none of which is wrong there.
"""

from __future__ import annotations

import logging

import pytest

from steel.cli import UserError
from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.data.s11v")


def test_every_record_too_large_names_the_limits(tmp_path, enc):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "good.txt").write_text("长江是中国最长的河流。\n", encoding="utf-8")
    for k in range(2):
        (raw / f"book{k}.txt").write_text("第一章 少年时代。\n\n" * 20, encoding="utf-8")  # 240 characters
    base = {"root": str(raw), "workers": 0, "max_doc_chars": 100, "dedup": {"near": False},
            "sources": [{"name": "good", "path": ["good.txt"]}, {"name": "books", "path": ["book*.txt"]}]}
    with pytest.raises(UserError) as e:
        prepare(from_dict(DataConfig, base), tmp_path / "out", encoder=enc, log=LOG, quiet=True)
    assert str(e.value).startswith(
        "source 'books': all 2 records rejected (too_large 2); each is over a size limit (max_doc_chars; "
        "max_line_bytes for a JSONL line, max_json_file_bytes for a JSON file): raise it, or cut .txt files into "
        "documents with txt_unit: paragraph or line;")
    # what the hint says works: paragraphs of 9 characters each
    base["sources"][1]["txt_unit"] = "paragraph"
    m = prepare(from_dict(DataConfig, base), tmp_path / "out", encoder=enc, log=LOG, quiet=True)
    assert m["sources"]["books"]["read"] == 40 and m["sources"]["books"]["rejected"] == {}


def test_every_record_not_utf8_names_the_encoding(tmp_path, enc):
    """A GBK-encoded CSV (common for Chinese data): every row invalid_utf8, told to check its text_field."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "good.txt").write_text("长江是中国最长的河流。\n", encoding="utf-8")
    (raw / "gbk.csv").write_bytes("text\n长江是中国最长的河流\n黄河是中国第二长的河流\n".encode("gb18030"))
    cfg = from_dict(DataConfig, {"root": str(raw), "workers": 0, "dedup": {"near": False}, "sources": [
        {"name": "good", "path": ["good.txt"]}, {"name": "gbk", "path": ["gbk.csv"]}]})
    with pytest.raises(UserError) as e:
        prepare(cfg, tmp_path / "out", encoder=enc, log=LOG, quiet=True)
    assert str(e.value).startswith(
        "source 'gbk': all 2 records rejected (invalid_utf8 2); its files are not UTF-8 text (GBK or GB18030? see the "
        "rejections above): convert them, e.g. iconv -f GB18030 -t UTF-8;")
