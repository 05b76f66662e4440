"""Tokens/s the pretraining loader delivers from memory-mapped chunks on one core.

Writes 8 chunks x 16M tokens (Qwen vocabulary -> uint32, 512 MiB, random tokens), reads them once to
warm the page cache, then times `PretrainLoader.next_batch()` (micro-batch 8, seq_len 2048: keyed
permutation, chunk lookup, window copy, int64 tensors) against a baseline in the same run: copying
the same number of contiguous windows straight out of the memmaps in file order. Median of 5 runs.

    .venv/bin/python bench/loader_throughput.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from steel.data.chunks import head_tail_md5, read_chunk, write_chunk, write_manifest
from steel.data.loader import PretrainLoader

VOCAB, SEQ, MICRO, N_CHUNKS, CHUNK_TOKENS, BATCHES = 151_936, 2048, 8, 8, 16_000_000, 400


def main() -> None:
    # No options; parsing still answers --help and refuses a flag instead of ignoring it (and writing 512 MiB).
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        rng = np.random.default_rng(0)
        chunks = []
        for i in range(N_CHUNKS):
            name = f"c{i}.bin"
            write_chunk(d / name, rng.integers(0, VOCAB, CHUNK_TOKENS, dtype=np.uint32), VOCAB, "bench")
            chunks.append({"file": name, "tokens": CHUNK_TOKENS, "md5": head_tail_md5(d / name), "source": "web"})
        write_manifest(d, {"total_tokens": N_CHUNKS * CHUNK_TOKENS, "chunks": chunks,
                           "tokenizer": {"fingerprint": "bench", "vocab_size": VOCAB, "eos_id": 0},
                           "sources": {"web": {"weight": 1.0}}, "config": {}})
        maps = [read_chunk(d / c["file"])[1] for c in chunks]
        for m in maps:
            int(np.asarray(m).sum(dtype=np.uint64))  # page cache warm
        ld = PretrainLoader([d], SEQ, MICRO, seed=0)
        tokens = BATCHES * MICRO * SEQ

        def loader_run() -> float:
            t0 = time.perf_counter()
            for _ in range(BATCHES):
                b = ld.next_batch()
            assert b["input_ids"].shape == (MICRO, SEQ)
            return tokens / (time.perf_counter() - t0)

        def baseline_run() -> float:
            t0 = time.perf_counter()
            pos = 0
            for k in range(BATCHES):
                out = np.empty((MICRO, SEQ + 1), dtype=np.int64)
                m = maps[k % N_CHUNKS]
                for i in range(MICRO):
                    out[i] = m[pos : pos + SEQ + 1]
                    pos = (pos + SEQ) % (CHUNK_TOKENS - SEQ - 1)
                t = torch.from_numpy(out)
                _ = (t[:, :-1], t[:, 1:])
            return tokens / (time.perf_counter() - t0)

        lo = [loader_run() for _ in range(5)]
        ba = [baseline_run() for _ in range(5)]
        lm, bm = statistics.median(lo), statistics.median(ba)
        print(f"loader:   {lm / 1e6:8.1f} M tokens/s (median of 5, {BATCHES} batches of {MICRO}x{SEQ})")
        print(f"baseline: {bm / 1e6:8.1f} M tokens/s (sequential memmap copy)")
        print(f"ratio loader/baseline: {lm / bm:.2f}; >= 20M tokens/s: {'yes' if lm >= 20e6 else 'no'}")


if __name__ == "__main__":
    main()
