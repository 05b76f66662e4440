"""zstd decompression is bounded per step, whatever the file's compression ratio, and a frame whose window is over
the limit is refused with a message that says so (sources._zstd_chunks, _ZstdWalk)."""

from __future__ import annotations

import gzip
import io
import random
import zlib

import pytest
import zstandard

from steel.data.config import DataConfig, SourceConfig
from steel.data.sources import _BLOCK, SourceReader, _blocks, decompressed_head

MIB = 1 << 20
# What one step may hand over: 8 blocks of 128 KiB (`_ZSTD_FEED_BLOCKS`) and a block being decoded.
STEP = 9 * (128 << 10)


def rle_frame(byte: bytes, blocks: int, window_log: int = 17, checksum: bool = False) -> bytes:
    """A zstd frame (RFC 8878) of `blocks` RLE blocks of 128 KiB of `byte` each, built by hand: 4 bytes per 128 KiB,
    a ratio no compressor reaches at its default level (zstd 1.5 gives ~1:4,000 on such data)."""
    fhd = 0x04 if checksum else 0x00  # no content size, not single segment, no dictionary
    header = b"\x28\xb5\x2f\xfd" + bytes([fhd, (window_log - 10) << 3])
    body = b"".join(((128 << 10) << 3 | 1 << 1 | (i == blocks - 1)).to_bytes(3, "little") + byte
                    for i in range(blocks))
    tail = b""
    if checksum:
        h = zstandard.ZstdCompressor(write_checksum=True).compress(byte * ((128 << 10) * blocks))
        tail = h[-4:]  # (xxh64 of the content, low 4 bytes: the compressor's own for the same content)
    return header + body + tail


def raw_frame(content: bytes, window_log: int) -> bytes:
    """A zstd frame holding `content` in one raw block, declaring a window of 2**window_log bytes."""
    header = b"\x28\xb5\x2f\xfd" + bytes([0x00, (window_log - 10) << 3])
    return header + (len(content) << 3 | 1).to_bytes(3, "little") + content


def test_bomb_frame_decompresses_in_bounded_steps():
    data = rle_frame(b"x", 512)  # 64 MiB from 2 KiB
    assert len(data) < 2100
    # Independent reference: zstandard's stream reader, which bounds each read.
    reference = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read(65 * MIB)
    assert reference == b"x" * (64 * MIB)
    sizes, total = [], 0
    for block in _blocks(io.BytesIO(data), "zst"):
        assert block == b"x" * len(block)
        sizes.append(len(block))
        total += len(block)
    assert total == 64 * MIB
    assert max(sizes) <= STEP, max(sizes)  # (at 35b457d: one block of 64 MiB)


def test_bomb_after_normal_frames_and_skippable_frames_is_bounded_too():
    text = b"".join(b'{"text": "doc %d"}\n' % i for i in range(5000))
    skippable = b"\x5a\x2a\x4d\x18" + (6).to_bytes(4, "little") + b"pzstd!"
    data = (skippable + zstandard.ZstdCompressor(level=3).compress(text) + skippable
            + rle_frame(b" ", 256, checksum=True) + zstandard.ZstdCompressor(write_checksum=True).compress(text))
    blocks = list(_blocks(io.BytesIO(data), "zst"))
    assert b"".join(blocks) == text + b" " * (32 * MIB) + text
    assert max(map(len, blocks)) <= STEP


@pytest.mark.parametrize("read", [1, 3, 7, 1000])
def test_headers_split_across_reads(read):
    # Every header (frame, block, skippable size, checksum) cut between two reads somewhere; the content unchanged.
    text = bytes(range(256)) * 3000
    frames = [zstandard.ZstdCompressor(level=1, write_checksum=c, write_content_size=s).compress(text)
              for c in (False, True) for s in (False, True)]
    skippable = b"\x50\x2a\x4d\x18" + (3).to_bytes(4, "little") + b"abc"
    data = skippable + b"".join(frames) + rle_frame(b"y", 20)
    from steel.data.sources import _zstd_chunks

    out = b"".join(_zstd_chunks(io.BytesIO(data), read))
    assert out == text * 4 + b"y" * (20 * (128 << 10))


def test_truncated_bomb_still_says_truncated():
    data = rle_frame(b"x", 64)
    got = bytearray()
    with pytest.raises(EOFError, match="truncated"):
        for block in _blocks(io.BytesIO(data[:-40]), "zst"):  # the last 10 blocks cut
            got += block
    assert got == b"x" * (54 * (128 << 10))


def test_head_of_a_bomb_reads_little():
    data = rle_frame(b"a", 4096)  # 512 MiB
    assert decompressed_head(io.BytesIO(data), 1 << 16) == b"a" * (1 << 16)


def _read(tmp_path, data: bytes, name: str = "w.jsonl.zst"):
    p = tmp_path / name
    p.write_bytes(data)
    src = SourceConfig(name="s", path=[name])
    return list(SourceReader(src, DataConfig(sources=[src])).read_file(p))


def test_window_over_the_limit_is_refused_with_a_message(tmp_path):
    # What `zstd --long=31` writes for input of unknown size: a frame declaring a 2 GiB window.
    items = _read(tmp_path, raw_frame(b'{"text": "a"}\n', 31))
    assert [(i.reason, i.doc) for i in items] == [("unreadable_file", None)]
    detail = items[0].detail
    assert "2,048 MiB window" in detail and "128 MiB" in detail and "--long" in detail, detail
    # (at 35b457d: "zstd decompressor error: Frame requires too much memory for decoding")


def test_window_at_the_limit_is_read(tmp_path):
    lines = b'{"text": "a"}\n{"text": "b"}\n'
    items = _read(tmp_path, raw_frame(lines, 27) + raw_frame(lines, 20))
    assert [i.doc for i in items] == ["a", "b", "a", "b"]


def test_gzip_bomb_is_bounded_per_read():
    # Python's gzip reader bounds each read (zlib's max_length): a check, no fix was needed.
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = b"".join(c.compress(b" " * MIB) for _ in range(64)) + c.flush()
    assert len(data) < 100_000
    assert gzip.decompress(data) == b" " * (64 * MIB)
    sizes = [len(b) for b in _blocks(io.BytesIO(data), "gz")]
    assert sum(sizes) == 64 * MIB and max(sizes) <= _BLOCK


def test_the_walk_follows_every_kind_of_frame_and_block():
    # Frames of raw, RLE and compressed blocks, with and without checksum and content size, flushed mid-stream,
    # between skippable frames, walked in reads of every size: the walk ends between frames each time (a walk out
    # of step would take data for a header: a wrong window refused, or feeds cut at random), and the text is whole.
    from steel.data.sources import _zstd_chunks, _ZstdWalk

    rng = random.Random(1)
    for trial in range(40):
        parts, text = [], b""
        for _ in range(rng.randint(1, 4)):
            n = rng.choice([0, 1, 100, 5000, 300_000])
            kind = rng.randrange(3)
            content = (rng.randbytes(n) if kind == 0 else bytes([rng.randrange(256)]) * n if kind == 1
                       else b"".join(b"word%d " % rng.randrange(50) for _ in range(n // 6)))
            c = zstandard.ZstdCompressor(level=rng.choice([-5, 1, 3, 19]), write_checksum=rng.random() < 0.5,
                                         write_content_size=rng.random() < 0.5)
            if rng.random() < 0.3:  # a streaming writer that flushes a block now and then
                obj = c.compressobj()
                frame = b"".join(obj.compress(content[i : i + 10_000]) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
                                 for i in range(0, len(content), 10_000)) + obj.flush()
            else:
                frame = c.compress(content)
            parts.append(frame)
            text += content
            if rng.random() < 0.3:
                parts.append(bytes([0x50 + rng.randrange(16)]) + b"\x2a\x4d\x18" + (5).to_bytes(4, "little") + b"hello")
        data = b"".join(parts)
        step = rng.choice([1, 7, 1 << 14, 1 << 20])
        walk = _ZstdWalk(1 << 27)
        for i in range(0, len(data), step):
            walk.ends(data[i : i + step])
        assert (walk.state, walk.held, walk.lost, walk.skip) == ("magic", b"", False, 0), trial
        if step > 1:
            assert b"".join(_zstd_chunks(io.BytesIO(data), step)) == text, trial
