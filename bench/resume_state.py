"""Resume state size and resume time of the pretraining loader at real scale (~500M samples).

Builds 1T tokens of chunk files as *sparse* files (the header is real, the tokens are holes: no disk
used), 4096 chunks of ~244M tokens, seq_len 2048 -> ~488M samples, consumes 300M of them, appends
data 4 times, then measures the JSON state and the time to resume: build the loader from the data
dirs, `load_state_dict`, and produce the first batch (median of 5). Hashing chunk heads/tails at
start (`data.verify: true`) reads 2 MiB per chunk and is reported separately, per chunk.

    .venv/bin/python bench/resume_state.py [--tmp DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from steel.data.chunks import (
    HEADER_SIZE,
    VERSION,
    ChunkHeader,
    dtype_for_vocab,
    head_tail_md5,
    write_manifest,
)
from steel.data.loader import PretrainLoader

VOCAB, SEQ = 151_936, 2048


def sparse_dir(path: Path, n_chunks: int, tokens: int, prefix: str) -> Path:
    path.mkdir(parents=True)
    dtype = dtype_for_vocab(VOCAB)
    chunks = []
    for i in range(n_chunks):
        name = f"{prefix}-{i:05d}.bin"
        with open(path / name, "wb") as f:
            f.write(ChunkHeader(VERSION, dtype, VOCAB, tokens, "bench").pack())
            f.truncate(HEADER_SIZE + tokens * dtype.itemsize)
        # Sparse files all hash alike; with verify off the manifest's MD5 field is just a unique label here.
        chunks.append({"file": name, "tokens": tokens, "md5": f"{prefix}{i:027d}", "source": "web"})
    write_manifest(path, {"total_tokens": n_chunks * tokens, "chunks": chunks,
                          "tokenizer": {"fingerprint": "bench", "vocab_size": VOCAB, "eos_id": 0},
                          "sources": {"web": {"weight": 1.0}}, "config": {}})
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        main_dir = sparse_dir(tmp / "main", 4096, 244_140_625, "a")
        adds = [sparse_dir(tmp / f"add{k}", 32, 244_140_625, f"b{k}") for k in range(4)]
        print(f"made sparse data in {time.perf_counter() - t0:.1f}s")
        ld = PretrainLoader([main_dir], SEQ, micro_batch=8, seed=1, world_size=8, verify=False)
        total = ld.total
        ld.consumed = 300_000_000
        for k, d in enumerate(adds):
            ld.add_data([d])
            ld.consumed += 10_000_000
        state = json.dumps(ld.state_dict())
        dirs = [main_dir]
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            r = PretrainLoader(dirs, SEQ, micro_batch=8, seed=1, rank=3, world_size=8, verify=False,
                               lookup_dirs=adds)
            r.load_state_dict(json.loads(state))
            r.next_batch()
            times.append(time.perf_counter() - t0)
        chunk = next(main_dir.glob("*.bin"))
        t0 = time.perf_counter()
        for _ in range(20):
            head_tail_md5(chunk)
        per_hash = (time.perf_counter() - t0) / 20
        print(f"samples: {total:,} + {ld.total - total:,} appended in 4 appends; segments: {len(ld.order.segments)}")
        print(f"state size: {len(state):,} bytes ({len(state) / 2**20:.3f} MiB) for {len(ld.chunks)} chunks")
        print(f"resume time (build loader + load_state_dict + first batch, median of 5): {statistics.median(times):.3f} s")
        print(f"head/tail MD5 per chunk (data.verify): {per_hash * 1e3:.1f} ms -> {per_hash * len(ld.chunks):.1f} s for all")
        ok = len(state) < 2**20 and statistics.median(times) < 1.0
        print(f"state < 1 MiB and resume < 1 s: {'yes' if ok else 'no'}")


if __name__ == "__main__":
    main()
