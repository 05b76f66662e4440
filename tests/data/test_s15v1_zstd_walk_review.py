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


def block_ends(data: bytes) -> list[int]:
    """Independent reference: where each block of a whole zstd stream ends, from zstandard's frame header size and
    the block headers (RFC 8878 3.1.1.2), skippable frames passed; empty raw blocks end nothing."""
    ends, pos = [], 0
    while pos < len(data):
        if data[pos + 1 : pos + 4] == b"\x2a\x4d\x18" and data[pos] & 0xF0 == 0x50:
            pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "little")
            continue
        checksum = data[pos + 4] & 4
        pos += zstandard.frame_header_size(data[pos : pos + 18])
        while True:
            h = int.from_bytes(data[pos : pos + 3], "little")
            body = 1 if (h >> 1) & 3 == 1 else h >> 3
            pos += 3 + body
            if body:
                ends.append(pos)
            if h & 1:
                break
        pos += 4 if checksum else 0
    return ends


def test_the_walk_ends_every_block_where_it_ends_in_reads_of_any_size():
    # Many small blocks (a writer flushing each record), empty raw blocks, RLE and compressed ones, in reads of 1
    # byte to 1 MiB: every block end is reported once, at its offset.
    import random

    from steel.data.sources import _ZstdWalk

    rng = random.Random(5)
    for trial in range(20):
        parts = []
        for _ in range(rng.randint(1, 3)):
            obj = zstandard.ZstdCompressor(level=rng.choice([1, 3]), write_checksum=rng.random() < 0.5).compressobj()
            frame = b""
            for _ in range(rng.randint(1, 150)):
                n = rng.choice([0, 1, 20, 60, 1000])
                content = bytes([rng.randrange(256)]) * n if rng.random() < 0.2 else rng.randbytes(n)
                frame += obj.compress(content) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            parts.append(frame + obj.flush())
            if rng.random() < 0.3:
                parts.append(b"\x5f\x2a\x4d\x18" + (3).to_bytes(4, "little") + b"abc")
            if rng.random() < 0.5:  # by hand: raw, empty raw, RLE, empty raw, last raw blocks
                blocks = [(0, b"ab", 2), (0, b"", 0), (1, b"z", 5), (0, b"", 0), (0, b"c", 1)]
                parts.append(window_header(17) + b"".join(
                    (size << 3 | kind << 1 | (k == len(blocks) - 1)).to_bytes(3, "little") + body
                    for k, (kind, body, size) in enumerate(blocks)))
        data = b"".join(parts)
        expected = block_ends(data)
        assert len(expected) > len(parts) // 2, trial
        for step in (1, 2, 3, 5, 64, 1 << 14, 1 << 20):
            walk, got = _ZstdWalk(1 << 27), []
            for i in range(0, len(data), step):
                got += [i + e for e in walk.ends(data[i : i + step])]
            assert got == expected, (trial, step)
            assert (walk.state, walk.held, walk.lost) == ("magic", b"", False), (trial, step)
