"""A tiny file (under 128 bytes) of GBK text with a stray NUL byte is not taken for BOM-less UTF-16.

Since Hangul counts as text in `_bomless_utf16` (05a6480), GBK pairs read as UTF-16 land mostly on Hangul, and a
head under 128 bytes may hold at most one bad byte in its legacy reading: such a file was refused whole, told to
convert it with `iconv -f UTF-16BE` (which garbles it), where each line is the `invalid_utf8` rejection any GBK
file gets (and the summary's GB18030 hint)."""

from __future__ import annotations

import pytest

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader, _bomless_utf16

LINE = "人工智能是计算机科学的一个分支，它企图了解智能的实质。"


def _items(tmp_path, data: bytes):
    path = tmp_path / "a.txt"
    path.write_bytes(data)
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)], "txt_unit": "line"}]})
    return [(it.line, it.doc, it.reason) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


def test_tiny_gbk_file_with_a_stray_nul_is_read_line_by_line(tmp_path):
    data = f"{LINE}\n{LINE}\n".encode("gbk")
    data = data[:56] + b"\0" + data[56:]  # (inside the second line's first character)
    assert len(data) == 111 and data.count(0) == 1
    assert _items(tmp_path, data) == [(1, None, "invalid_utf8"), (2, None, "invalid_utf8")]


@pytest.mark.parametrize("nul_at, size", [(1, 32), (5, 40), (26, 32), (38, 40)])
def test_short_gbk_head_with_a_stray_nul_is_no_utf16(nul_at, size):
    data = (LINE + "\r\n").encode("gbk")
    assert _bomless_utf16((data[:nul_at] + b"\0" + data[nul_at:])[:size]) is None


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("text", ["第1章 人工智能\n", "Москва 2024\n", "서울 2024년\n", "Le café été 1\n"])
def test_short_utf16_with_ascii_is_still_told(codec, text):
    """Its NUL high bytes are those of ASCII characters (a space, a digit, a newline)."""
    assert _bomless_utf16((text * 4).encode(codec)[:64]) == codec.upper()
