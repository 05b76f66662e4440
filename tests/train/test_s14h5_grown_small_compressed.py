"""Grown inputs the 64 KB head rule missed: a file under 64 KB that grew (its recorded head was all of it, so the
grown file's head differed) and a .gz/.zst file recompressed whole after records were appended (its compressed
head changed: gzip's mtime, zstd's frame content size). Both were taken for new data and their first prepare's
documents trained twice per epoch. The manifest now records the digest of the first bytes once decompressed and
their length; manifests of an older Steel are judged as before."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import random
from pathlib import Path

import pytest
import zstandard
from train_fixtures import Bytes

from steel.config import from_dict
from steel.data.chunks import read_manifest, write_manifest
from steel.data.config import DataConfig
from steel.data.loader import DataError, PretrainLoader, num_windows
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.s14h5")
T = 16
HEAD_BYTES = 1 << 16
WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "north", "paper", "lamp"]
PACK = {"gz": lambda b, t: gzip.compress(b, mtime=t),  # (the mtime of each write, as gzip records it)
        "zst": lambda b, t: zstandard.ZstdCompressor(level=3 + t % 2).compress(b)}


def records(seed: str, n: int) -> bytes:
    rng = random.Random(seed)
    return "".join(json.dumps({"text": f"{seed} {i}: " + " ".join(rng.choice(WORDS) for _ in range(14))}) + "\n"
                   for i in range(n)).encode()


def prep(root: Path, out: Path, paths: list[str], chunk_tokens: int = 4000) -> Path:
    cfg = {"root": str(root), "tokenizer": "unused", "chunk_tokens": chunk_tokens, "workers": 0, "filters": [],
           "dedup": {"exact": True, "near": False}, "sources": [{"name": "web", "path": paths}]}
    prepare(from_dict(DataConfig, cfg), out, encoder=Bytes(), log=LOG, quiet=True)
    return out


def windows(*dirs: Path) -> int:
    return sum(num_windows(c["tokens"], T) for d in dirs for c in read_manifest(d)["chunks"])


def loader(*dirs: Path) -> PretrainLoader:
    return PretrainLoader(list(dirs), seq_len=T, micro_batch=2, seed=3)


def test_a_small_file_that_grew_is_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "log.jsonl").write_bytes(records("log", 30))
    old_size = (raw / "log.jsonl").stat().st_size
    assert old_size < HEAD_BYTES
    a = prep(raw, tmp_path / "A", ["log.jsonl"])
    with open(raw / "log.jsonl", "ab") as f:
        f.write(records("appended", 20))
    new_size = (raw / "log.jsonl").stat().st_size
    b = prep(raw, tmp_path / "B", ["log.jsonl"], chunk_tokens=5000)
    ld = loader(a)
    with pytest.raises(DataError) as e:  # was: accepted, the 30 records in both dirs
        ld.add_data([b])
    assert read_manifest(a)["input_heads"]["files"]["log.jsonl"][1] == old_size
    log = str((raw / "log.jsonl").resolve())
    assert (f"{log} is {new_size:,} bytes for {b} and {old_size:,} for {a}, with the same first {old_size:,} bytes: "
            f"it grew (records appended) between the two prepares") in str(e.value)
    assert f"tail -c +{old_size + 1} FILE > NEW" in str(e.value)
    with pytest.raises(DataError, match="it grew"):
        loader(b, a)
    # grown past 64 KB since: the first prepare's bytes are still the start of the file
    with open(raw / "log.jsonl", "ab") as f:
        f.write(records("more", 900))
    c = prep(raw, tmp_path / "C", ["log.jsonl"])
    assert read_manifest(c)["input_heads"]["files"]["log.jsonl"][1] == HEAD_BYTES
    with pytest.raises(DataError, match="it grew"):
        loader(a, c)


def test_a_small_file_rewritten_is_other_data(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "log.jsonl").write_bytes(records("log", 30))
    a = prep(raw, tmp_path / "A", ["log.jsonl"])
    (raw / "log.jsonl").write_bytes(records("log", 10) + records("other", 30))  # its first 10 records kept
    b = prep(raw, tmp_path / "B", ["log.jsonl"], chunk_tokens=5000)
    assert loader(a, b).total == windows(a, b)


@pytest.mark.parametrize("n", [30, 900], ids=["small", "over-64KB"])
@pytest.mark.parametrize("comp", ["gz", "zst"])
def test_a_compressed_file_recompressed_whole_after_growing_is_refused(tmp_path, comp, n):
    raw = tmp_path / "raw"
    raw.mkdir()
    name = f"crawl.jsonl.{comp}"
    first = records("crawl", n)
    (raw / name).write_bytes(PACK[comp](first, 1))
    a = prep(raw, tmp_path / "A", [name])
    old_head = (raw / name).read_bytes()[:HEAD_BYTES]
    (raw / name).write_bytes(PACK[comp](first + records("appended", 40), 2))
    assert (raw / name).read_bytes()[:HEAD_BYTES] != old_head  # (what the old digest compared)
    b = prep(raw, tmp_path / "B", [name], chunk_tokens=5000)
    with pytest.raises(DataError) as e:  # was: accepted, the first prepare's records in both dirs
        loader(a, b)
    same = min(len(first), HEAD_BYTES)
    assert f"with the same first {same:,} bytes once decompressed: it grew (records appended)" in str(e.value)
    assert "put the records added since in a file of another name" in str(e.value)


@pytest.mark.parametrize("comp", ["gz", "zst"])
def test_a_compressed_file_rewritten_is_other_data(tmp_path, comp):
    raw = tmp_path / "raw"
    raw.mkdir()
    name = f"crawl.jsonl.{comp}"
    (raw / name).write_bytes(PACK[comp](records("crawl", 900), 1))
    a = prep(raw, tmp_path / "A", [name])
    (raw / name).write_bytes(PACK[comp](records("rewritten", 950), 2))
    b = prep(raw, tmp_path / "B", [name], chunk_tokens=5000)
    assert loader(a, b).total == windows(a, b)


def _as_older_steel(d: Path, heads: dict[str, bytes]) -> None:
    """Rewrite `d`'s manifest as an older Steel wrote it: the digest alone, of each file's own first 64 KB."""
    m = read_manifest(d)
    m["input_heads"] = {"bytes": HEAD_BYTES, "files": {
        name: hashlib.blake2b(head[:HEAD_BYTES], digest_size=8).hexdigest() for name, head in heads.items()}}
    write_manifest(d, {k: v for k, v in m.items() if k not in ("format", "version")})


def test_older_manifests_are_judged_by_their_rule(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "big.jsonl").write_bytes(records("big", 900))
    (raw / "small.jsonl").write_bytes(records("small", 30))
    at_a = {n: (raw / n).read_bytes() for n in ("big.jsonl", "small.jsonl")}
    a = prep(raw, tmp_path / "A", ["big.jsonl"])
    a_small = prep(raw, tmp_path / "As", ["small.jsonl"])
    for n in at_a:
        with open(raw / n, "ab") as f:
            f.write(records("appended", 20))
    b = prep(raw, tmp_path / "B", ["big.jsonl"], chunk_tokens=5000)
    b_small = prep(raw, tmp_path / "Bs", ["small.jsonl"], chunk_tokens=5000)
    _as_older_steel(a, {"big.jsonl": at_a["big.jsonl"]})
    _as_older_steel(a_small, {"small.jsonl": at_a["small.jsonl"]})
    # an older manifest with a newer one: the same first 64 KB of a plain file are the same bytes
    with pytest.raises(DataError, match="it grew"):
        loader(a, b)
    _as_older_steel(b, {"big.jsonl": (raw / "big.jsonl").read_bytes()})
    _as_older_steel(b_small, {"small.jsonl": (raw / "small.jsonl").read_bytes()})
    with pytest.raises(DataError, match="it grew"):  # both older: over 64 KB, told as before
        loader(a, b)
    # both older: a file under 64 KB was not told, and is not (their digests cover the whole of each)
    assert loader(a_small, b_small).total == windows(a_small, b_small)
