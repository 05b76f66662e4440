"""MinHash permutations come from fixed 64-bit arithmetic (not numpy's default_rng stream, which numpy
does not promise across versions), so shards prepared on machines with other numpy versions compare in
`merge --near`; the manifest records the scheme and merge refuses signatures drawn another way."""

from __future__ import annotations

import json
import logging

import pytest

from steel.cli import main as steel_main
from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.dedup import MinHasher, fold
from steel.data.prepare import prepare

M64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    x &= M64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def reference_signature(text: str, num_perm: int, ngram: int, seed: int) -> list[int]:
    """Pure-Python integers: the documented scheme (dedup.py's module docstring), nothing from numpy."""
    start = splitmix64(seed)
    xs = [splitmix64(start + k * 0x9E3779B97F4A7C15) for k in range(1, 2 * num_perm + 1)]
    a, b = [x | 1 for x in xs[0::2]], xs[1::2]
    cps = [ord(c) for c in text]
    n = min(ngram, len(cps))
    shingles = []
    for i in range(len(cps) - n + 1):
        h = 0
        for c in cps[i : i + n]:
            h = (h * 1_000_003 + c) & M64
        shingles.append(splitmix64(h))
    return [min(min(((ak * x + bk) & M64) >> 32 for x in shingles), 0xFFFFFFFF) for ak, bk in zip(a, b)]


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**64 - 1])
def test_signature_matches_a_pure_python_reference(seed):
    text = fold("Steel 钢铁 — a MinHash reference, 第二句。")
    got = MinHasher(num_perm=32, ngram=5, seed=seed).signature(text)
    assert got.tolist() == reference_signature(text, 32, 5, seed)


def test_merge_near_refuses_signatures_of_other_permutations(tmp_path, enc, capsys):
    for i in range(4):
        words = " ".join(f"词{w}" for w in range(i * 500, i * 500 + 80))
        (tmp_path / f"part{i}.jsonl").write_text(json.dumps({"text": words}, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": "unused", "chunk_tokens": 50, "workers": 0,
                                 "filters": [], "sources": [{"name": "parts", "path": ["part*.jsonl"]}]})
    log = logging.getLogger("test.steel.data")
    dirs = [tmp_path / f"s{k}" for k in range(2)]
    for k, d in enumerate(dirs):
        assert prepare(cfg, d, shard=(k, 2), encoder=enc, log=log, quiet=True)["dedup"]["minhash"] == "splitmix64"
    args = ["data", "merge", str(tmp_path / "merged"), *map(str, dirs), "--near"]
    assert steel_main(args) == 0
    # shard 1 as an older Steel wrote it: permutations from numpy's default_rng, no "minhash" key
    m = json.loads((dirs[1] / "manifest.json").read_text(encoding="utf-8"))
    del m["dedup"]["minhash"]
    (dirs[1] / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    capsys.readouterr()
    assert steel_main([*args[:2], str(tmp_path / "m2"), *args[3:]]) == 2
    err = capsys.readouterr().err
    assert f"{dirs[1]}'s MinHash signatures were drawn with other permutations (numpy-default_rng)" in err
