"""BOM-less UTF-16 Chinese text whose Latin-1 characters outnumber its ASCII ones is still told: a translated
novel writes every foreign name with U+00B7 (安娜·卡列尼娜), one or more a line, and since 95edfa9 (the units whose
high byte is NUL had to be mostly ASCII) such a file was read as UTF-8, each line rejected with a GB18030 hint."""

from __future__ import annotations

import pytest

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader, _bomless_utf16

LINE = "安娜·卡列尼娜走进客厅，她看见了列文和吉娣·谢尔巴茨卡娅，他们正在谈论着什么。"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_utf16_with_more_interpuncts_than_ascii_is_told(tmp_path, codec, end):
    data = ((LINE + end) * 60).encode(codec)
    assert _bomless_utf16(data[:4096]) == codec.upper()
    path = tmp_path / "novel.txt"
    path.write_bytes(data)
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)], "txt_unit": "line"}]})
    [item] = SourceReader(cfg.sources[0], cfg).read_file(path)
    assert (item.line, item.doc, item.reason) == (0, None, "invalid_utf8")
    assert item.detail.startswith(f"the file is {codec.upper()} (no byte order mark, told by its first bytes)")
