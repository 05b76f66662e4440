"""Session 11 data-pipeline review: inputs (compression) and `steel data inspect`."""

from __future__ import annotations

import json
import struct

import pytest
import zstandard

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader


def _skippable(payload: bytes = b"\x00\x00\x00\x00", nibble: int = 0) -> bytes:
    """A zstd skippable frame (magic 0x184D2A50-5F, little-endian, then its size): what `pzstd` writes
    before each frame (its payload is the next frame's size)."""
    return struct.pack("<II", 0x184D2A50 + nibble, len(payload)) + payload


def _read(path, **src):
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)], **src}]})
    return [(it.line, it.doc, it.reason) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


@pytest.mark.parametrize("name,src,body,want", [
    ("a.json.zst", {}, b'[{"text": "one"}, {"text": "two"}]', [(1, "one", None), (2, "two", None)]),
    ("a.json.zst", {}, b'{"text": "one"}\n{"text": "two"}\n', [(1, "one", None), (2, "two", None)]),
    ("a.csv.zst", {}, b"id,text\n1,one\n2,\"two\nlines\"\n", [(2, "one", None), (3, "two\nlines", None)]),
    ("a.tsv.zst", {}, b"text\tx\none\t1\n", [(2, "one", None)]),
    ("a.txt.zst", {"txt_unit": "line"}, b"one\ntwo\n", [(1, "one", None), (2, "two", None)]),
    ("a.data", {"format": "jsonl"}, b'{"text": "one"}\n{"text": "two"}', [(1, "one", None), (2, "two", None)]),
    ("a.jsonl.zst", {}, b'{"text": "one"}\n', [(1, "one", None)]),
])
def test_zstd_file_opening_with_a_skippable_frame_is_decompressed(tmp_path, name, src, body, want):
    # pzstd's layout: a skippable frame before each zstd frame. Told plain by its first 4 bytes, such a
    # file was read as compressed bytes: all rejected (invalid_utf8, malformed_json; a CSV's rows missing_field).
    c = zstandard.ZstdCompressor()
    half = len(body) // 2
    data = _skippable(nibble=0) + c.compress(body[:half]) + _skippable(b"xyz", nibble=0xF) + c.compress(body[half:])
    (tmp_path / name).write_bytes(data)
    assert _read(tmp_path / name, **src) == want


def test_a_plain_file_is_not_taken_for_zstd(tmp_path):
    # the bytes 0x2a 0x4d 0x18 after a byte outside 0x50-0x5f are no skippable frame
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "*M\\u0018"}\n')
    assert _read(tmp_path / "a.jsonl") == [(1, "*M\x18", None)]
    (tmp_path / "b.txt").write_bytes(b"O*M\x18 text")
    assert _read(tmp_path / "b.txt") == [(1, "O*M\x18 text", None)]


def test_prepare_accounts_a_pzstd_layout_file(tmp_path, qwen_tokenizer_dir):
    from steel.data.prepare import prepare

    c = zstandard.ZstdCompressor()
    rows = "".join(f"{i},row number {i}\n" for i in range(5)).encode()
    (tmp_path / "r.csv.zst").write_bytes(_skippable() + c.compress(b"id,text\n" + rows))
    (tmp_path / "p.json.zst").write_bytes(_skippable() + c.compress(json.dumps([{"text": "json doc"}]).encode()))
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": str(qwen_tokenizer_dir), "workers": 1,
                                 "dedup": {"exact": False, "near": False},
                                 "sources": [{"name": "c", "path": ["r.csv.zst"]}, {"name": "j", "path": ["p.json.zst"]}]})
    m = prepare(cfg, tmp_path / "out", quiet=True)
    assert [(s["read"], s["kept"], s["rejected"]) for s in m["sources"].values()] == [(5, 5, {}), (1, 1, {})]
