"""A small .zst/.gz recompressed (another level) between two prepares holds the same text: the pair is refused as
a duplicate with that said, not as a file cut or grown.

Since 63ffca8 the heads are of the decompressed text with its length: the same text of under 64 KB at both prepares
(other compressed sizes) was told "it is 6,552 bytes now, so it was cut or rewritten ... If cut, the documents of its
6,552 bytes are in both dirs" (recompressed smaller) or "it grew (records appended) ... put the records added since
in a file of another name" (recompressed larger): nothing was cut or added.
"""

from __future__ import annotations

import gzip

import pytest
import zstandard
from test_s14h5_grown_small_compressed import loader, prep, records

from steel.data.loader import DataError

PACK = {"zst": lambda b, level: zstandard.ZstdCompressor(level=level).compress(b),
        "gz": lambda b, level: gzip.compress(b, compresslevel=min(level, 9), mtime=0)}


@pytest.mark.parametrize("levels", [(1, 19), (19, 1)], ids=["smaller-since", "larger-since"])
@pytest.mark.parametrize("comp", ["zst", "gz"])
def test_a_small_compressed_file_recompressed_is_told_the_same_text(tmp_path, comp, levels):
    raw = tmp_path / "raw"
    raw.mkdir()
    name, text = f"d.jsonl.{comp}", records("x", 500)
    assert len(text) < 1 << 16
    first, then = (PACK[comp](text, level) for level in levels)
    assert len(first) != len(then)
    (raw / name).write_bytes(first)
    a = prep(raw, tmp_path / "A", [name])
    (raw / name).write_bytes(then)
    b = prep(raw, tmp_path / "B", [name], chunk_tokens=4099)
    with pytest.raises(DataError) as e:
        loader(a, b)
    told = str(e.value)
    assert (f"with the same first {len(text):,} bytes once decompressed: that is all of its text at both prepares, "
            f"recompressed into another number of bytes, so all its documents are in both dirs") in told, told
    said = told[told.index(", with the same first"):]  # (what is said of this file)
    assert "cut" not in said and "grew" not in said and "added since" not in said, said
