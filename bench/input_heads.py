"""What the manifest's `input_heads` cost on many small input files (session 14, H5): the heads' read at prepare
(`prepare.file_heads`), `steel data prepare` as a whole on the same files, and the loader's duplicate-input check of
two data dirs prepared before and after every file grew (`loader.check_distinct_inputs`: the worst case, where
each file under 64 KB is read again to tell it grew).

Run it with this checkout's code and with another's (PYTHONPATH=OTHER/src) to compare; each timing is the median of
--runs runs (wall and CPU seconds), in one process, on files in the page cache. Usage:
    .venv/bin/python bench/input_heads.py [--files 4000] [--runs 5] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

import zstandard

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.loader import DataError, check_distinct_inputs, dir_inputs
from steel.data.prepare import file_heads, prepare

WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "north", "paper", "lamp"]
PACK = {"jsonl": lambda b: b, "jsonl.gz": lambda b: gzip.compress(b, mtime=0),
        "jsonl.zst": zstandard.ZstdCompressor().compress}


class Bytes:
    """A stand-in tokenizer (one id per UTF-8 byte): the figures are of the reading, not of a tokenizer."""

    eos_id, vocab_size, fingerprint, special_ids, engine = 0, 257, "f" * 64, {}, "bytes"

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


def records(rng: random.Random, n: int) -> bytes:
    return "".join(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(30))}) + "\n"
                   for _ in range(n)).encode()


def median(fn, runs: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `runs` calls; CPU time (all threads of this process) is what a shared machine
    distorts least."""
    walls, cpus = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--shared", default=None, help="also time file_heads over DIR/pretrain_*/*.jsonl.zst (real files)")
    args = ap.parse_args()
    if args.shared:
        real = sorted(Path(args.shared).glob("pretrain_*/*.jsonl.zst"))
        files = [(0, p, p.name) for p in real]
        wall, cpu = median(lambda: file_heads(files), max(args.runs, 20))
        print(f"{len(real)} files of {args.shared} ({sum(p.stat().st_size for p in real) / 1e6:.1f} MB): file_heads "
              f"{wall * 1e3:.1f}/{cpu * 1e3:.1f} ms wall/CPU")
    log = logging.getLogger("bench.input_heads")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    with tempfile.TemporaryDirectory() as tmp:
        for kind, pack in PACK.items() if args.files > 0 else ():
            root = Path(tmp) / kind
            root.mkdir()
            rng = random.Random(0)
            texts = [records(rng, 10) for _ in range(args.files)]  # ~2.3 KB of text per file
            names = [f"f{i:06d}.{kind}" for i in range(args.files)]
            for name, text in zip(names, texts):
                (root / name).write_bytes(pack(text))
            files = [(0, root / n, n) for n in names]
            heads = median(lambda: file_heads(files), args.runs)
            cfg = from_dict(DataConfig, {"root": str(root), "tokenizer": "unused", "workers": 0, "filters": [],
                                         "dedup": {"exact": False, "near": False},
                                         "sources": [{"name": "s", "path": [f"*.{kind}"]}]})
            whole = median(lambda: prepare(cfg, Path(tmp) / f"{kind}-A", encoder=Bytes(), log=log, quiet=True),
                           max(1, args.runs // 2))
            a = prepare(cfg, Path(tmp) / f"{kind}-A", encoder=Bytes(), log=log, quiet=True)
            for name, text in zip(names, texts):  # every file grows by a record
                (root / name).write_bytes(pack(text + records(rng, 1)))
            b = prepare(cfg, Path(tmp) / f"{kind}-B", encoder=Bytes(), log=log, quiet=True)
            da, db = dir_inputs(Path(tmp) / f"{kind}-A", a), dir_inputs(Path(tmp) / f"{kind}-B", b)
            told = []

            def check():
                try:
                    check_distinct_inputs([db], [da])
                    told.append(False)
                except DataError:
                    told.append(True)

            checked = median(check, args.runs)
            print(f"{args.files:,} .{kind} files (wall/CPU): file_heads {heads[0] * 1e3:.0f}/{heads[1] * 1e3:.0f} ms "
                  f"({heads[1] / args.files * 1e6:.0f} us CPU per file); prepare {whole[0]:.2f}/{whole[1]:.2f} s "
                  f"(heads {heads[1] / whole[1]:.1%} of its CPU); loader check of the dirs before/after every file "
                  f"grew {checked[0] * 1e3:.0f}/{checked[1] * 1e3:.0f} ms, grown told: {told[-1]}")


if __name__ == "__main__":
    main()
