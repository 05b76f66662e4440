"""Read speed of zstd JSONL files through `sources._zstd_chunks` (decompression with the block walk, `_ZstdWalk`)
and `jsonl_byte_lines` (the lines prepare reads), for two checkouts side by side.

Files: --file (a real .jsonl.zst, e.g. one made from ../shared/data), and two made here from --mib MiB of seeded
synthetic records of ~100 bytes: "whole", compressed at level 3 in one go (blocks of ~30 KB), and "flushed", each
record flushed as a block of its own (what a writer that flushes per record leaves: blocks of ~60 bytes, the walk's
worst case). Each timing runs in a fresh process; the figure is the median of --runs, interleaved between the two
checkouts.

Usage (--base: the `src` directory of an older checkout, e.g. a worktree of 35b457d):
    .venv/bin/python bench/zstd_walk_throughput.py --base /tmp/wt-old/src [--src src] [--file F.jsonl.zst]
        [--mib 64] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from steel.data.sources import _zstd_chunks, jsonl_byte_lines
t, n = time.perf_counter(), 0
with open(sys.argv[2], "rb") as f:
    if sys.argv[3] == "chunks":
        for block in _zstd_chunks(f):
            n += len(block)
    else:
        for line in jsonl_byte_lines(f, "jsonl.zst"):
            n += 1
print(time.perf_counter() - t, n)
"""


def make_files(d: Path, mib: int) -> dict[str, Path]:
    import zstandard

    rng = random.Random(0)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(2000)]
    records, size = [], 0
    while size < mib << 20:
        text = b" ".join(rng.choice(words) for _ in range(rng.randint(5, 20)))
        records.append(b'{"text": "' + text + b'"}\n')
        size += len(records[-1])
    whole, flushed = d / "whole.jsonl.zst", d / "flushed.jsonl.zst"
    whole.write_bytes(zstandard.ZstdCompressor(level=3).compress(b"".join(records)))
    obj = zstandard.ZstdCompressor(level=3).compressobj()
    flushed.write_bytes(b"".join(obj.compress(r) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for r in records)
                        + obj.flush())
    return {"whole": whole, "flushed": flushed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=str(REPO / "src"))
    ap.add_argument("--base", required=True, help="the src directory of the checkout to compare with")
    ap.add_argument("--file", help="a real .jsonl.zst file to read as well")
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.mib)
        if args.file:
            files = {"file": Path(args.file), **files}
        for name, path in files.items():
            for mode in ("chunks", "lines"):
                times: dict[str, list[float]] = {"base": [], "src": []}
                for _ in range(args.runs):
                    for which, src in (("base", args.base), ("src", args.src)):
                        out = subprocess.run([sys.executable, "-c", CHILD, src, str(path), mode], check=True,
                                             capture_output=True, text=True).stdout.split()
                        times[which].append(float(out[0]))
                b, s = statistics.median(times["base"]), statistics.median(times["src"])
                mb = path.stat().st_size / 1e6
                print(f"{name:8s} {mode:6s} ({mb:,.1f} MB compressed): base {b:.3f} s, src {s:.3f} s, "
                      f"src/base {s / b:.2f}")


if __name__ == "__main__":
    main()
