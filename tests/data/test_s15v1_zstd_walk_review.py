"""Review of the zstd walk (53b4cd1, `sources._ZstdWalk`): a frame refused for its window ends the read where that
frame starts, keeping the records of the frames before it, as any other read error does (SourceReader: "the
records read before the error are kept"); the refusal names a window just over the limit in bytes."""

from __future__ import annotations

import io

import pytest
import zstandard

from steel.data.config import DataConfig, SourceConfig
from steel.data.sources import ZSTD_MAX_WINDOW, SourceReader, _zstd_chunks

MAGIC = b"\x28\xb5\x2f\xfd"


def raw_block_frame(content: bytes, header: bytes) -> bytes:
    """A frame of `content` in one raw last block after `header` (magic number, descriptor, window/content size)."""
    return header + (len(content) << 3 | 1).to_bytes(3, "little") + content


def window_header(window_log: int) -> bytes:
    return MAGIC + bytes([0x00, (window_log - 10) << 3])  # not single segment, no dictionary, no content size


def records(n: int, tag: str) -> bytes:
    return b"".join(b'{"text": "%s %d"}\n' % (tag.encode(), i) for i in range(n))


@pytest.mark.parametrize("read", [1, 1000, 1 << 20])
def test_frames_before_a_refused_window_are_read(read):
    good = records(2000, "kept")
    data = zstandard.ZstdCompressor(level=3).compress(good) + raw_block_frame(records(2, "never"), window_header(28))
    # Independent reference: the stream as zstandard decodes it frame by frame, the second frame refused.
    first = zstandard.ZstdDecompressor().decompressobj()
    assert first.decompress(data) == good and first.eof
    out = []
    with pytest.raises(OSError, match="256 MiB window"):
        for block in _zstd_chunks(io.BytesIO(data), read):
            out.append(block)
    # (at 0e43ac6, with the whole 1 MiB read walked before its first feed: nothing; 35b457d's decompressor
    # refused the frame after decoding the first)
    assert b"".join(out) == good


def test_reader_keeps_the_records_before_a_refused_window(tmp_path):
    data = zstandard.ZstdCompressor(level=3).compress(records(2000, "kept")) + raw_block_frame(
        records(2, "never"), window_header(28))
    p = tmp_path / "two.jsonl.zst"
    p.write_bytes(data)
    src = SourceConfig(name="s", path=[p.name])
    items = list(SourceReader(src, DataConfig(sources=[src])).read_file(p))
    assert [i.doc for i in items[:-1]] == [f"kept {i}" for i in range(2000)]
    assert items[-1].reason == "unreadable_file" and "256 MiB window" in items[-1].detail, items[-1]


def test_window_one_byte_over_the_limit_is_told_in_bytes():
    # A single-segment frame's window is its content size (RFC 8878 3.1.1.1.2): 2**27 + 1 bytes, 4-byte field.
    header = MAGIC + bytes([0x80 | 0x20]) + (ZSTD_MAX_WINDOW + 1).to_bytes(4, "little")
    with pytest.raises(OSError) as e:
        list(_zstd_chunks(io.BytesIO(raw_block_frame(b"x", header))))
    # (at 0e43ac6: "needs a 128 MiB window > 128 MiB")
    assert "134,217,729" in str(e.value) and "134,217,728" in str(e.value), str(e.value)
