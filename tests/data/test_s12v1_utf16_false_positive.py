"""A UTF-16 file without a byte order mark is told by its first 4 KB (1617979). Two printable ASCII bytes decode to
CJK in either byte order, so English text in Latin-1/cp1252 (or any text that opens inside a UTF-8 character) with
one NUL byte in its first 4 KB was taken for UTF-16: the whole file was one rejection and nothing of it was kept,
where each bad line is rejected on its own (as before 1617979)."""

from __future__ import annotations

import json
import random

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader

WORDS = ("the river runs through eleven provinces of the country and its basin holds a third of the people who "
         "live there while its delta is one of the richest regions").split()


def _texts(n: int, words: int) -> list[str]:
    rng = random.Random(3)
    return [" ".join(rng.choices(WORDS, k=words)) + f" {k}" for k in range(n)]


def _read(path, **extra):
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)], **extra}]})
    return [(it.line, it.doc, it.reason) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


def test_cp1252_jsonl_with_a_nul_byte_is_read_line_by_line(tmp_path):
    nul_line = 3  # (its NUL at an odd offset: taken for UTF-16-LE)
    texts = _texts(40, 80)  # (web documents: lines long enough that the JSON around them is a small part)
    lines = [json.dumps({"text": t}).encode("ascii") for t in texts]
    lines[1] = lines[1].replace(b"river", b"caf\xe9")  # cp1252 "café": not UTF-8
    lines[nul_line] = lines[nul_line].replace(b" ", b"\0", 1)  # a raw NUL: malformed JSON
    data = b"\n".join(lines) + b"\n"
    assert data.count(0) == 1 and data.index(0) < 4096 and data.index(0xE9) < 4096
    path = tmp_path / "web.jsonl"
    path.write_bytes(data)
    items = _read(path)
    assert [(line, reason) for line, _, reason in items if reason] == sorted(
        [(2, "invalid_utf8"), (nul_line + 1, "malformed_json")])
    assert [doc for _, doc, reason in items if not reason] == [t for k, t in enumerate(texts) if k not in (1, nul_line)]


def test_text_cut_inside_a_utf8_character_with_a_nul_byte_is_read_line_by_line(tmp_path):
    """A piece of a file split by bytes (`split -b`) opens with the rest of a character."""
    texts = _texts(40, 12)
    texts[5] = texts[5].replace(" ", "\0", 1)
    path = tmp_path / "part.txt"
    path.write_bytes("長".encode("utf-8")[1:] + b"\n" + "\n".join(texts).encode("utf-8") + b"\n")
    items = _read(path, txt_unit="line")
    assert items[0][:1] + items[0][2:] == (1, "invalid_utf8")
    assert [doc for _, doc, _ in items[1:]] == texts
