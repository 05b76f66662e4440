"""A UTF-16 file without a byte order mark is told by its first 4 KB (1617979): the byte order was the one whose high
bytes hold more NULs. A Chinese character whose low byte is 0 (一 is U+4E00) puts a NUL on the other side, so Chinese
prose with more of them than ASCII characters in its head (a novel's long paragraphs, newlines its only ASCII) was
not told: read as UTF-8, a rejection per line, and the summary said to convert from GB18030. The order with more
NULs is still tried first, which keeps English text with such a character in its own order."""

from __future__ import annotations

import json

import pytest
from test_s12h2_utf16 import _items  # one SourceReader pass over a file: (line, doc, reason, detail)

# Long paragraphs of plain prose, newlines the only ASCII: 一 (a NUL on the low side) far outnumbers them.
PARAGRAPHS = ["他一个人走了一里路，看见一座山，山上有一棵树，树下有一条河，河边坐着一位老人。" * 12 + f"第{k}回。"
              for k in range(8)]


def _told(codec: str, iconv: str):
    return [(0, None, "invalid_utf8", f"the file is {codec.upper()} (no byte order mark, told by its first bytes), "
                                      f"not UTF-8; convert it, e.g. `iconv -f {iconv} -t UTF-8`")]


@pytest.mark.parametrize("codec, iconv", [("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE")])
@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_chinese_prose_with_more_yi_than_ascii_is_told(tmp_path, codec, iconv, suffix):
    if suffix == ".txt":
        text = "\n\n".join(PARAGRAPHS) + "\n"
    else:
        text = "".join(json.dumps({"text": p}, ensure_ascii=False) + "\n" for p in PARAGRAPHS)
    data = text.encode(codec)
    head = data[:4096]
    low, high = (head[0::2], head[1::2]) if codec == "utf-16-le" else (head[1::2], head[0::2])
    assert low.count(0) > high.count(0) > 0  # (the case: more NULs on the low side, by 一)
    assert _items(tmp_path, "a" + suffix, data) == _told(codec, iconv)


def test_english_with_a_character_of_low_byte_zero_keeps_its_order(tmp_path):
    text = "".join(f"plain english line {k} about the river 一 and its delta\n" for k in range(120))
    assert _items(tmp_path, "a.txt", text.encode("utf-16-be")) == _told("utf-16-be", "UTF-16BE")
