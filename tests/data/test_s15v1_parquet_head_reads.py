"""Review of the parquet input head (0e43ac6, `sources.comparable_head`): a parquet file's head (its first rows as
JSON lines, 64 KB, read by prepare for every input file before any work, and by the loader) reads the first pages of
its columns, not its first row group whole: pyarrow's ParquetFile pre-buffers every column chunk of a row group
unless told not to, so the head of a file of images read the whole first row group (~100 MB and more each)."""

from __future__ import annotations

import hashlib
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from steel.data.sources import comparable_head


class Counted(io.RawIOBase):
    """A file that counts the bytes read from it."""

    def __init__(self, data: bytes):
        self.f, self.read_bytes = io.BytesIO(data), 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=0):
        return self.f.seek(pos, whence)

    def tell(self):
        return self.f.tell()

    def readinto(self, b):
        n = self.f.readinto(b)
        self.read_bytes += n
        return n


def test_the_head_of_a_parquet_file_reads_its_first_pages_alone():
    rows = 400
    images = [bytes([i % 251]) * 40_000 + i.to_bytes(4, "little") for i in range(rows)]  # 16 MB, one row group
    table = pa.table({"text": [f"doc {i}" for i in range(rows)], "image": images})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=rows, compression="none", use_dictionary=False,
                   write_batch_size=8)  # (pages of ~320 KB: of 1,024 rows, the default, one page)
    data = buf.getvalue()
    assert len(data) > 16_000_000 and pq.ParquetFile(io.BytesIO(data)).num_row_groups == 1
    raw = Counted(data)
    head = comparable_head(raw, 1000)
    # Independent reference: the rows as JSON lines, a binary value as its length and BLAKE2b-64.
    expected = b"".join(json.dumps({"text": f"doc {i}", "image": f"<{len(v)} bytes "
                                    f"{hashlib.blake2b(v, digest_size=8).hexdigest()}>"}).encode() + b"\n"
                        for i, v in enumerate(images[:20]))[:1000]
    assert head == expected
    # (at 0e43ac6: the whole row group, 16 MB; the first batch of 16 rows spans the image column's first ~1 MB pages)
    assert raw.read_bytes < 4_000_000, raw.read_bytes
