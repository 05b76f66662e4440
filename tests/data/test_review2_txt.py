"""Text files read by line or by paragraph hold at most about `max_doc_chars` of a line or paragraph: a
longer one is one `too_large` rejection at its first line, and the lines after it keep their numbers."""

from __future__ import annotations

import io
import random
import tracemalloc

import pytest

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import LongText, SourceReader, _text_lines

LIMIT = 10_000  # max_doc_chars of these tests


def reader(unit: str) -> SourceReader:
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["x"], "txt_unit": unit}],
                                 "max_doc_chars": LIMIT})
    return SourceReader(cfg.sources[0], cfg)


def read_traced(r: SourceReader, path) -> tuple[list, int]:
    """(items as (line, doc, reason), peak bytes Python allocated while reading)."""
    tracemalloc.start()
    try:
        got = [(it.line, it.doc, it.reason) for it in r.read_file(path)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return got, peak


def test_a_paragraph_without_blank_lines_is_never_held_whole(tmp_path):
    # 7.8 MB of short lines without a blank line between them (a book dump with single newlines), then a
    # short paragraph. Before: the whole paragraph was held (peak > 15 MB) to be rejected after.
    p = tmp_path / "book.txt"
    lines = 100_000
    with open(p, "w", encoding="utf-8", newline="") as f:
        for i in range(lines):
            f.write(f"line {i:06d} of a long chapter that never has a blank line in it at all......\r\n")
        f.write("\r\nlast paragraph\r\n")
    assert p.stat().st_size > 7_500_000
    got, peak = read_traced(reader("paragraph"), p)
    assert got == [(1, None, "too_large"), (lines + 2, "last paragraph", None)]
    assert peak < 1_000_000, peak  # a paragraph of at most LIMIT characters, and buffers


def test_a_line_longer_than_max_doc_chars_is_never_held_whole(tmp_path):
    p = tmp_path / "one.txt"
    p.write_text("short\n" + "没有换行的文本" * 1_000_000 + "\nafter\n\n   \t\n", encoding="utf-8")
    got, peak = read_traced(reader("line"), p)
    assert got == [(1, "short", None), (2, None, "too_large"), (3, "after", None)]
    assert peak < 1_000_000, peak


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_paragraphs_at_the_limit(tmp_path, newline):
    """Kept up to max_doc_chars characters, whatever the line ends; one more is too_large (the reader
    passes on a paragraph it cannot tell by 2 characters, and prepare's own check rejects it)."""
    for size in (LIMIT - 1, LIMIT, LIMIT + 1, LIMIT + 2, LIMIT + 3):
        half = size // 2
        para = "a" * half + newline + "b" * (size - half - len(newline))  # size characters in all
        p = tmp_path / "p.txt"
        p.write_text(f"x{newline}{newline}{para}{newline}{newline}y{newline}", encoding="utf-8", newline="")
        got = [(it.line, it.doc, it.reason) for it in reader("paragraph").read_file(p)]
        assert got[0] == (1, "x", None) and got[2] == (6, "y", None)
        line, doc, reason = got[1]
        assert line == 3
        kept = doc is not None and len(doc) <= LIMIT  # what prepare keeps (it rejects longer documents)
        assert kept == (size <= LIMIT), (size, reason)
        assert doc is None and reason == "too_large" or doc == para


def test_text_lines_split_as_the_stream_does():
    """`_text_lines` gives the lines iterating the text stream gives ("\\r", "\\n", "\\r\\n"; not the other
    line separators of str.splitlines), and a LongText for each line over the limit."""
    rng = random.Random(0)
    alphabet = ["a", "b", " ", "\t", "\r", "\n", "\r\n", "中", "\u3000", "\x0b", "\u2028", "\x85"]

    def stream(s: str):
        return io.TextIOWrapper(io.BytesIO(s.encode()), encoding="utf-8", newline="")

    for _ in range(5000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        want = list(stream(s))
        assert list(_text_lines(stream(s), 1 << 30)) == want
        limit = rng.randint(0, 8)  # small limits: readline's cap cuts lines, and "\r\n" pairs
        expected = []
        for line in want:
            content = line.removesuffix("\n").removesuffix("\r")
            expected.append(LongText(len(content), not line.strip()) if len(content) > limit else line)
        assert list(_text_lines(stream(s), limit)) == expected, (s, limit)
