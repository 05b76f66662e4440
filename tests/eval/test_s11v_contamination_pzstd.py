"""eval contamination reads a zstd file opening with a skippable frame (pzstd's layout) whatever its name.

1b51e44 taught prepare's magic-number check that frame; contamination, which tells compression by the
magic number "as steel data prepare tells it", still took such a `.jsonl` for plain text and refused it as
invalid UTF-8, though prepare reads the same file.
"""

from __future__ import annotations

import json
import struct

import zstandard
from test_mc import CEVAL_HEADER_VAL, make_ceval_dir
from tiny_models import write_csv

from steel.eval import contamination as C


def pzstd_like(data: bytes, pieces: int = 2) -> bytes:
    """Frames as pzstd writes them: each after a skippable frame (magic 0x184D2A50) holding its size."""
    out, step = b"", -(-len(data) // pieces)
    for k in range(0, len(data), step):
        frame = zstandard.ZstdCompressor().compress(data[k : k + step])
        out += struct.pack("<II", 0x184D2A50, 4) + struct.pack("<I", len(frame)) + frame
    return out


def test_skippable_frame_file_without_a_zst_suffix_is_scanned(tmp_path):
    bench = make_ceval_dir(tmp_path / "ceval")
    write_csv(bench / "val" / "computer_network_val.csv", CEVAL_HEADER_VAL,
              [["0", "下列哪项是哺乳动物而不是鱼类", "鲸鱼", "鲨鱼", "金鱼", "章鱼", "A"]])
    copy = "下列哪项是哺乳动物而不是鱼类 A. 鲸鱼 B. 鲨鱼 C. 金鱼 D. 章鱼"
    data = (json.dumps({"text": "无关"}) + "\n" + json.dumps({"text": copy}) + "\n").encode()
    path = tmp_path / "z.jsonl"
    path.write_bytes(pzstd_like(data))
    assert path.read_bytes()[:4] == b"\x50\x2a\x4d\x18"
    res = C.contamination_report([path], "ceval", bench, "val", n=13, threshold=1.0)
    assert [f["where"].rsplit("/", 1)[1] for f in res["flagged"]] == ["computer_network_val.csv:2"]
