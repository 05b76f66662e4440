"""eval contamination reads .zst training files as `steel data prepare` does: every frame, and a truncated file is a
read error naming it. zstandard's stream_reader ended a file cut inside a frame without an error, so the check ran
on whatever came before the cut (here: nothing) and reported the file clean."""

from __future__ import annotations

import json
import struct

import pytest
import zstandard

from steel.cli import UserError
from steel.eval.contamination import training_texts

RECORDS = [{"text": f"第{i}条记录 record {i} " * 40} for i in range(200)]


def _jsonl() -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS).encode()


def test_truncated_zst_is_a_read_error(tmp_path):
    whole = zstandard.ZstdCompressor(level=3).compress(_jsonl())
    p = tmp_path / "train.jsonl.zst"
    p.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match=r"train\.jsonl\.zst: read error .*truncated"):
        list(training_texts([p]))


def test_pzstd_frames_all_read(tmp_path):
    # pzstd's layout: a skippable frame before every frame; each half of the records in a frame of its own
    data, z, half = _jsonl(), zstandard.ZstdCompressor(), len(_jsonl()) // 2
    cut = data.index(b"\n", half) + 1
    skip = b"\x50\x2a\x4d\x18" + struct.pack("<I", 4) + struct.pack("<I", cut)
    p = tmp_path / "train.jsonl"  # no .zst suffix: told by the magic number
    p.write_bytes(skip + z.compress(data[:cut]) + skip + z.compress(data[cut:]))
    assert list(training_texts([p])) == [r["text"] for r in RECORDS]
