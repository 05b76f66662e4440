"""`format: jsonl` (or a `.jsonl` name) reads plain, gzip or zstd files, told by the magic number, as
csv/txt/json do: before, `format: jsonl` on `.jsonl.zst` files read the compressed bytes as lines (every
line one invalid_utf8/malformed_json rejection, no document kept)."""

from __future__ import annotations

import gzip
import json

import pytest
import zstandard

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader

DOCS = [f"文档 {i}: some text" for i in range(50)]
PLAIN = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in DOCS).encode()
PACK = {"plain": lambda b: b, "gz": gzip.compress, "zst": lambda b: zstandard.ZstdCompressor().compress(b)}


@pytest.mark.parametrize("fmt", ["jsonl", "auto"])
@pytest.mark.parametrize("packed", ["plain", "gz", "zst"])
def test_jsonl_reads_plain_gzip_and_zstd(tmp_path, fmt, packed):
    p = tmp_path / "data.jsonl"  # the name says plain: `auto` takes the name's word (jsonl) too
    p.write_bytes(PACK[packed](PLAIN))
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["x"], "format": fmt}]})
    got = [(it.line, it.doc, it.reason) for it in SourceReader(cfg.sources[0], cfg).read_file(p)]
    assert got == [(i, t, None) for i, t in enumerate(DOCS, 1)]
