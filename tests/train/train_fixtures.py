"""Fixture data directories: documents of random tokens ending in EOS, written with the real chunk format."""

from __future__ import annotations

from pathlib import Path

import numpy as np


from steel.data.chunks import head_tail_md5, write_chunk, write_manifest

VOCAB = 256
EOS = 0
FINGERPRINT = "test-tokenizer-v1"


def make_data_dir(
    path: Path,
    chunk_tokens: list[int],
    seed: int = 0,
    source: str = "web",
    weight: float = 1.0,
    fingerprint: str = FINGERPRINT,
    prefix: str = "chunk",
) -> Path:
    """A prepared data dir with one chunk per entry of `chunk_tokens` (random documents, each ending in EOS)."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chunks = []
    for i, n in enumerate(chunk_tokens):
        toks = rng.integers(1, VOCAB, size=n)
        ends = rng.choice(n, size=max(1, n // 50), replace=False)
        toks[ends] = EOS
        toks[-1] = EOS
        name = f"{prefix}-{i:05d}.bin"
        write_chunk(path / name, toks, VOCAB, fingerprint)
        chunks.append({"file": name, "tokens": n, "md5": head_tail_md5(path / name), "source": source})
    write_manifest(
        path,
        {
            "total_tokens": sum(chunk_tokens),
            "chunks": chunks,
            "tokenizer": {"fingerprint": fingerprint, "vocab_size": VOCAB, "eos_id": EOS},
            "sources": {source: {"read": 0, "kept": 0, "filtered": {}, "rejected": {}, "weight": weight, "kind": "text"}},
            "config": {},
        },
    )
    return path


