"""A file that grew between two prepares (records appended to the same path) has another size, so the duplicate-
input rule took it for other data: `--add-data` (or `data.dirs`) of the second prepare trained the first prepare's
documents twice per epoch. The manifest now records a digest of each input file's first 64 KB (`input_heads`); the
same path with the same first bytes and another size is the same file, grown."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
from train_fixtures import Bytes

from steel.config import from_dict
from steel.data.chunks import read_manifest, write_manifest
from steel.data.config import DataConfig
from steel.data.loader import DataError, PretrainLoader, num_windows
from steel.data.merge import merge
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.s13h2")
T = 16
HEAD_BYTES = 1 << 16  # the 64 KB whose digest a manifest records per input file
WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "north", "paper", "lamp"]


def records(seed: str, n: int) -> str:
    rng = random.Random(seed)
    return "".join(json.dumps({"text": f"{seed} {i}: " + " ".join(rng.choice(WORDS) for _ in range(14))}) + "\n"
                   for i in range(n))


def prep(root: Path, out: Path, paths: list[str], chunk_tokens: int = 4000, shard=(0, 1)) -> Path:
    cfg = {"root": str(root), "tokenizer": "unused", "chunk_tokens": chunk_tokens, "workers": 0, "filters": [],
           "dedup": {"exact": True, "near": False}, "sources": [{"name": "web", "path": paths}]}
    prepare(from_dict(DataConfig, cfg), out, shard=shard, encoder=Bytes(), log=LOG, quiet=True)
    return out


def windows(*dirs: Path) -> int:
    return sum(num_windows(c["tokens"], T) for d in dirs for c in read_manifest(d)["chunks"])


@pytest.fixture()
def raw(tmp_path) -> Path:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "crawl.jsonl").write_text(records("crawl", 900))  # over 64 KB
    (tmp_path / "raw" / "other.jsonl").write_text(records("other", 30))
    assert (tmp_path / "raw" / "crawl.jsonl").stat().st_size > HEAD_BYTES
    return tmp_path / "raw"


def test_a_file_grown_between_two_prepares_is_refused_in_one_run(raw, tmp_path):
    a = prep(raw, tmp_path / "A", ["crawl.jsonl"])
    old_size = (raw / "crawl.jsonl").stat().st_size
    with open(raw / "crawl.jsonl", "a") as f:
        f.write(records("appended", 40))
    new_size = (raw / "crawl.jsonl").stat().st_size
    b = prep(raw, tmp_path / "B", ["crawl.jsonl"], chunk_tokens=5000)
    crawl = str((raw / "crawl.jsonl").resolve())
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    ld.next_batch()
    state = ld.state_dict()
    with pytest.raises(DataError) as e:  # was: accepted, `windows(b)` more samples, the 900 records in both
        ld.add_data([b])
    msg = str(e.value)
    assert "were prepared from the same input files" in msg and crawl in msg
    assert (f"{crawl} is {new_size:,} bytes for {b} and {old_size:,} for {a}, with the same first {HEAD_BYTES:,} "
            f"bytes: it grew (records appended) between the two prepares") in msg
    assert f"tail -c +{old_size + 1} FILE > NEW" in msg
    assert ld.state_dict() == state and ld.total == windows(a)
    with pytest.raises(DataError, match="it grew"):
        PretrainLoader([a, b], seq_len=T, micro_batch=2, seed=3)
    # what the message says to do: the appended bytes alone, in a file of another name, are new data
    (raw / "crawl.part2.jsonl").write_bytes((raw / "crawl.jsonl").read_bytes()[old_size:])
    part2 = prep(raw, tmp_path / "P2", ["crawl.part2.jsonl"])
    assert read_manifest(part2)["sources"]["web"]["read"] == 40
    assert ld.add_data([part2]) == windows(part2)
    assert read_manifest(a)["input_heads"]["bytes"] == HEAD_BYTES


def test_a_file_rewritten_with_other_first_bytes_is_still_other_data(raw, tmp_path):
    a = prep(raw, tmp_path / "A", ["crawl.jsonl"])
    (raw / "crawl.jsonl").write_text(records("rewritten", 950))
    b = prep(raw, tmp_path / "B", ["crawl.jsonl"], chunk_tokens=5000)
    assert PretrainLoader([a, b], seq_len=T, micro_batch=2, seed=3).total == windows(a, b)


def test_manifests_without_heads_are_judged_as_before(raw, tmp_path):
    a = prep(raw, tmp_path / "A", ["crawl.jsonl"])
    with open(raw / "crawl.jsonl", "a") as f:
        f.write(records("appended", 40))
    b = prep(raw, tmp_path / "B", ["crawl.jsonl"], chunk_tokens=5000)
    m = read_manifest(a)  # as an older Steel wrote it
    del m["input_heads"]
    write_manifest(a, {k: v for k, v in m.items() if k not in ("format", "version")})
    assert PretrainLoader([a, b], seq_len=T, micro_batch=2, seed=3).total == windows(a, b)


def test_merged_shards_keep_the_heads(raw, tmp_path):
    files = ["crawl.jsonl", "other.jsonl"]
    shards = [prep(raw, tmp_path / f"s{k}", files, shard=(k, 2)) for k in range(2)]
    m = merge(tmp_path / "merged", shards, log=LOG)
    single = read_manifest(prep(raw, tmp_path / "single", files))
    assert m["input_heads"]["bytes"] == HEAD_BYTES
    assert m["input_heads"] == single["input_heads"] and set(m["input_heads"]["files"]) == set(files)
    with open(raw / "crawl.jsonl", "a") as f:
        f.write(records("appended", 40))
    b = prep(raw, tmp_path / "B", ["crawl.jsonl"], chunk_tokens=5000)
    with pytest.raises(DataError, match="it grew"):
        PretrainLoader([tmp_path / "merged", b], seq_len=T, micro_batch=2, seed=3)
