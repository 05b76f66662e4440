"""Parquet is read in batches of at most 1024 rows and, where rows are large, about PARQUET_BATCH_BYTES of the
columns read: 1024 rows of 1 MB documents were one 1 GB Arrow batch plus their Python strings (5.6 GB peak RSS
for a file of 2048 such rows). Sized by the read columns alone: an image column no field reads does not shrink
the batches. (The sizes come from the row groups' metadata; the batching decision is tested, not memory.)"""

from __future__ import annotations

import random
import string

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steel.config import from_dict
from steel.data import sources
from steel.data.config import DataConfig
from steel.data.sources import SourceReader

ROWS = 200
TEXT_BYTES = 1000  # per row, ASCII
BLOB_BYTES = 10_000  # per row, in columns the source does not read
TARGET = 64_000  # PARQUET_BATCH_BYTES for the test: 64 rows of 1000 bytes, 5.8 of 11,000


def _texts(n: int, size: int) -> list[str]:
    rng = random.Random(1)
    return [f"{k:05d}" + "".join(rng.choices(string.ascii_letters, k=size - 5)) for k in range(n)]


@pytest.fixture
def spy(monkeypatch):
    """The batch_size of every ParquetFile.iter_batches call."""
    sizes: list[int] = []
    real = pq.ParquetFile.iter_batches

    def iter_batches(self, batch_size=65536, *a, **kw):
        sizes.append(batch_size)
        return real(self, batch_size, *a, **kw)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", iter_batches)
    monkeypatch.setattr(sources, "PARQUET_BATCH_BYTES", TARGET)
    return sizes


def _read(path, **source):
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)], **source}]})
    return [(it.line, it.doc, it.reason) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


def test_large_rows_make_smaller_batches_of_the_read_columns_alone(tmp_path, spy):
    texts = _texts(ROWS, TEXT_BYTES)
    rng = random.Random(2)
    blobs = [rng.randbytes(BLOB_BYTES) for _ in range(ROWS)]
    # `meta` (2 leaf columns, one of them large) comes first: a wrong leaf mapping would size `text` by meta.more
    table = pa.table({"meta": [{"lang": "en", "more": [b.hex()[:BLOB_BYTES]]} for b in blobs], "text": texts,
                      "image": blobs})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=100)
    assert _read(tmp_path / "a.parquet") == [(k + 1, t, None) for k, t in enumerate(texts)]
    # 1000 bytes of text, plus a 4-byte length and dictionary indices: 60 to 64 rows of 64 KB; counting the
    # image or meta.more (10 KB) would give 5
    assert len(spy) == 1 and 60 <= spy[0] <= 64, spy
    # a source reading `meta` (its field meta.lang) reads its large leaf too
    spy.clear()
    assert [d for _, d, _ in _read(tmp_path / "a.parquet", text_field="meta.lang")] == ["en"] * ROWS
    assert len(spy) == 1 and 5 <= spy[0] <= 6, spy


def test_small_rows_keep_1024_row_batches(tmp_path, spy):
    texts = _texts(3000, 20)
    pq.write_table(pa.table({"text": texts, "image": [b"\0" * BLOB_BYTES] * 3000}), tmp_path / "s.parquet")
    assert _read(tmp_path / "s.parquet") == [(k + 1, t, None) for k, t in enumerate(texts)]
    assert spy == [1024]


def test_a_row_over_the_target_is_a_batch_of_one(tmp_path, spy):
    texts = _texts(3, 3 * TARGET)
    pq.write_table(pa.table({"text": texts}), tmp_path / "b.parquet")
    assert _read(tmp_path / "b.parquet") == [(k + 1, t, None) for k, t in enumerate(texts)]
    assert spy == [1]
