"""BOM-less UTF-16 of Chinese text extracted from a PDF, which writes CJK radicals (U+2E80-2FDF: ⼀ for 一, ⼈ for 人)
for common ideographs: they were no text to `_bomless_utf16`, and such a file was read as UTF-8, each line rejected
(the summary telling to convert from GB18030, which garbles it) instead of one rejection naming UTF-16."""

from __future__ import annotations

import pytest

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader, _bomless_utf16

# (radicals where a PDF's text layer puts them: ⼀ U+2F00, ⼈ U+2F08, ⼤ U+2F24, ⼿ U+2F3F, ⽔ U+2F54, ⽤ U+2F64, ⻋ U+2EEB)
ROW = "{k},⼀个⼈⽤⼿把⽔倒进⼤桶，⻋在路上⾛了{k}⾥。\r\n"
CSV = "id,text\r\n" + "".join(ROW.format(k=k) for k in range(120))


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_cjk_radicals_is_told(tmp_path, codec):
    data = CSV.encode(codec)
    assert len(data) > 4096
    assert _bomless_utf16(data[:4096]) == codec.upper()
    path = tmp_path / "a.csv"
    path.write_bytes(data)
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)]}]})
    [item] = SourceReader(cfg.sources[0], cfg).read_file(path)
    assert (item.line, item.doc, item.reason) == (0, None, "invalid_utf8")
    assert item.detail.startswith(f"the file is {codec.upper()} (no byte order mark, told by its first bytes)")
