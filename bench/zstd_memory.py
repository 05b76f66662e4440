"""Peak memory (RSS) of reading a zstd "bomb" with `SourceReader`, against reading an ordinary zstd JSONL file.

The bomb is one frame of --gib GiB of one repeated byte (spaces: one line over max_line_bytes, a `too_large`
rejection), 4 bytes per 128 KiB (RLE blocks, built by hand as in tests/data/test_s15b_zstd_memory.py). The
ordinary file is --mib MiB of short JSONL records compressed by zstandard at level 3. Each file is read in a
fresh process (its peak RSS from wait4); the figure is the bomb's peak over the ordinary file's.

Usage (--src: the `src` directory of the checkout to measure, e.g. a worktree of an older commit):
    .venv/bin/python bench/zstd_memory.py [--gib 2] [--mib 64] [--src src]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from pathlib import Path
from steel.data.config import DataConfig, SourceConfig
from steel.data.sources import SourceReader
p = Path(sys.argv[1])
src = SourceConfig(name="s", path=[p.name], format="jsonl.zst")
t = time.perf_counter()
items = reasons = 0
for item in SourceReader(src, DataConfig(sources=[src])).read_file(p):
    items += 1
    reasons += item.reason is not None
print(items, reasons, round(time.perf_counter() - t, 2))
"""


def rle_frame(byte: bytes, blocks: int) -> bytes:
    body = b"".join(((128 << 10) << 3 | 1 << 1 | (i == blocks - 1)).to_bytes(3, "little") + byte
                    for i in range(blocks))
    return b"\x28\xb5\x2f\xfd" + bytes([0x00, (17 - 10) << 3]) + body


def peak_rss(path: Path, src: Path) -> tuple[float, str]:
    """(peak RSS in MiB, the child's output) of reading `path` in a fresh process with `src` on its path."""
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], env=env, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"reading {path} failed ({proc.returncode})")
    return usage.ru_maxrss / 1024, out.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=int, default=2)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--src", type=Path, default=REPO / "src")
    args = ap.parse_args()
    import zstandard

    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "bomb.jsonl.zst"
        bomb.write_bytes(rle_frame(b" ", args.gib * 8192))
        plain = Path(tmp) / "plain.jsonl.zst"
        record = b'{"text": "%d ' + b"lorem ipsum " * 20 + b'"}\n'
        text = b"".join(record % i for i in range(args.mib * (1 << 20) // len(record)))
        plain.write_bytes(zstandard.ZstdCompressor(level=3).compress(text))
        base, base_out = peak_rss(plain, args.src.resolve())
        peak, peak_out = peak_rss(bomb, args.src.resolve())
        print(f"src: {args.src}")
        print(f"ordinary file: {plain.stat().st_size:,} B -> {len(text):,} B; items, rejections, s: {base_out}; "
              f"peak RSS {base:.0f} MiB")
        print(f"bomb: {bomb.stat().st_size:,} B -> {args.gib} GiB; items, rejections, s: {peak_out}; "
              f"peak RSS {peak:.0f} MiB")
        print(f"bomb / ordinary peak RSS: {peak / base:.2f}")


if __name__ == "__main__":
    main()
