"""Chunk file format: round trip, dtype by vocabulary, header checks, head/tail MD5."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from steel.data.chunks import (
    HEADER_SIZE,
    ChunkFormatError,
    ChunkWriter,
    head_tail_md5,
    read_chunk,
    read_header,
    read_manifest,
    write_chunk,
    write_manifest,
)


@pytest.mark.parametrize("vocab, dtype", [(1000, np.uint16), (65536, np.uint16), (151936, np.uint32)])
def test_round_trip(tmp_path, vocab, dtype):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, vocab, size=1237)
    p = write_chunk(tmp_path / "c.bin", tokens, vocab, "ab" * 32)
    header, arr = read_chunk(p)
    assert arr.dtype == dtype and header.num_tokens == 1237 and header.vocab_size == vocab
    assert header.fingerprint == "ab" * 32
    np.testing.assert_array_equal(np.asarray(arr), tokens)
    assert p.stat().st_size == HEADER_SIZE + 1237 * np.dtype(dtype).itemsize


def test_streaming_writer_and_no_tmp_left(tmp_path):
    w = ChunkWriter(tmp_path / "c.bin", 500, "f")
    w.write([1, 2, 3])
    w.write(np.array([4, 5], dtype=np.int64))
    assert not (tmp_path / "c.bin").exists()  # only visible once complete
    w.close()
    assert list(read_chunk(tmp_path / "c.bin")[1]) == [1, 2, 3, 4, 5]
    assert [p.name for p in tmp_path.iterdir()] == ["c.bin"]
    with pytest.raises(ValueError, match="out of range"):
        ChunkWriter(tmp_path / "d.bin", 500, "f").write([500])


def test_bad_headers(tmp_path):
    p = write_chunk(tmp_path / "c.bin", [1, 2, 3, 4], 100, "f")
    raw = p.read_bytes()
    (tmp_path / "trunc.bin").write_bytes(raw[:-2])
    with pytest.raises(ChunkFormatError, match="trunc.bin.*truncated"):
        read_header(tmp_path / "trunc.bin")
    (tmp_path / "magic.bin").write_bytes(b"NOTSTEEL" + raw[8:])
    with pytest.raises(ChunkFormatError, match="magic.bin: not a Steel chunk"):
        read_header(tmp_path / "magic.bin")
    (tmp_path / "ver.bin").write_bytes(raw[:8] + (99).to_bytes(4, "little") + raw[12:])
    with pytest.raises(ChunkFormatError, match="version 99"):
        read_header(tmp_path / "ver.bin")


def test_head_tail_md5(tmp_path):
    small = tmp_path / "s.bin"
    small.write_bytes(b"hello")
    assert head_tail_md5(small) == hashlib.md5(b"hello" + b"5").hexdigest()
    big = tmp_path / "b.bin"
    data = bytes(range(256)) * 40
    big.write_bytes(data)
    span = 1000
    assert head_tail_md5(big, span) == hashlib.md5(data[:span] + data[-span:] + str(len(data)).encode()).hexdigest()
    # a change in the middle is not seen (by design: only head and tail are read), one at the end is
    big.write_bytes(data[:5000] + b"X" + data[5001:])
    assert head_tail_md5(big, span) == hashlib.md5(data[:span] + data[-span:] + str(len(data)).encode()).hexdigest()
    big.write_bytes(data[:-1] + b"X")
    assert head_tail_md5(big, span) != hashlib.md5(data[:span] + data[-span:] + str(len(data)).encode()).hexdigest()


def test_manifest_round_trip(tmp_path):
    m = {"total_tokens": 3, "chunks": [], "tokenizer": {"vocab_size": 10}, "sources": {}}
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path)["total_tokens"] == 3
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ChunkFormatError, match="not a Steel data manifest"):
        read_manifest(tmp_path)


def test_manifest_is_on_disk_before_and_after_its_rename(tmp_path, monkeypatch):
    """A power loss after prepare must not leave an empty manifest.json over fsynced chunks: the temp file's
    data is fsynced before the rename, and the directory after it (the rename itself)."""
    import os

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.fstat(fd).st_ino)), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", os.stat(a).st_ino)), real_replace(a, b)))
    m = {"total_tokens": 3, "chunks": [], "tokenizer": {"vocab_size": 10}, "sources": {}}
    path = write_manifest(tmp_path, m)
    file_ino, dir_ino = path.stat().st_ino, tmp_path.stat().st_ino
    assert events == [("fsync", file_ino), ("replace", file_ino), ("fsync", dir_ino)]
    assert read_manifest(tmp_path)["total_tokens"] == 3


class _FullDiskFile:
    """A chunk writer's file on a full disk: writes and close (the flush) fail with ENOSPC."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        raise OSError(28, "No space left on device")

    def close(self):
        self.f.close()  # the descriptor is released, as io does when the flush fails
        raise OSError(28, "No space left on device")


def test_abort_is_best_effort_on_a_full_disk(tmp_path):
    w = ChunkWriter(tmp_path / "c.bin", 500, "f")
    w.write([1, 2, 3])
    w._f = _FullDiskFile(w._f)
    with pytest.raises(OSError, match="No space left") as info:
        try:
            w.write([4, 5])
        except OSError:
            w.abort()  # must not raise (which would mask the first error) and must remove c.bin.tmp
            raise
    assert info.value.__context__ is None  # the original error, not one raised by abort
    assert list(tmp_path.iterdir()) == []
    w.abort()  # twice: still quiet
