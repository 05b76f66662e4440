"""Shards must be split from one file list: each records the digest of the whole, unsharded input (names
and sizes), and `steel data merge` refuses shards that saw different files, or a file two shards read."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from steel.cli import UserError
from steel.config import from_dict
from steel.data.chunks import MANIFEST, read_manifest
from steel.data.config import DataConfig
from steel.data.merge import merge
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.data")


def cfg_for(d: Path, sources: list[dict]) -> DataConfig:
    return from_dict(DataConfig, {"root": str(d), "tokenizer": "unused", "chunk_tokens": 8, "workers": 0,
                                  "filters": [], "sources": sources})


def write_jsonl(path: Path, n: int) -> None:
    """`n` one-line documents, so the file sizes (and the size-balanced split) are known."""
    path.write_text("".join(json.dumps({"text": f"{path.stem} doc {j}"}) + "\n" for j in range(n)), encoding="utf-8")


@pytest.fixture()
def four_files(tmp_path):
    for k, n in zip(range(1, 5), [4, 1, 2, 3]):  # f1 the largest, then f4, f3, f2
        write_jsonl(tmp_path / f"f{k}.jsonl", n)
    return tmp_path, cfg_for(tmp_path, [{"name": "src", "path": ["*.jsonl"]}])


def test_shards_record_the_whole_input_listing(four_files, enc):
    d, cfg = four_files
    shards = [prepare(cfg, d / f"s{k}", shard=(k, 2), encoder=enc, log=LOG, quiet=True) for k in range(2)]
    sizes = {f"f{k}.jsonl": (d / f"f{k}.jsonl").stat().st_size for k in range(1, 5)}
    want = {"src": [[name, sizes[name]] for name in sorted(sizes)]}  # every file, not the shard's half
    assert [s["inputs"]["files"] for s in shards] == [want, want]
    assert shards[0]["inputs"]["digest"] == shards[1]["inputs"]["digest"]
    # largest first to the least loaded shard: f1 (4 docs) -> 0, f4 (3) -> 1, f3 (2) -> 1, f2 (1) -> 0
    assert [s["sources"]["src"]["files"] for s in shards] == [["f1.jsonl", "f2.jsonl"], ["f3.jsonl", "f4.jsonl"]]
    merged = merge(d / "merged", [d / "s0", d / "s1"], log=LOG)
    assert merged["inputs"] == {"digest": shards[0]["inputs"]["digest"], "root": str(d.resolve()), "files": want}
    assert sorted(merged["sources"]["src"]["files"]) == sorted(sizes)
    unsharded = prepare(cfg, d / "full", encoder=enc, log=LOG, quiet=True)
    assert unsharded["inputs"] == {"digest": shards[0]["inputs"]["digest"], "root": str(d.resolve()), "files": want}


def test_merge_refuses_shards_split_from_different_files(four_files, enc):
    """The reviewer's repro: f5 (the largest) appears between the runs of shard 0 and shard 1, which
    shifts shard 1's split: f1 was read by both shards and f5 by neither."""
    d, cfg = four_files
    s0 = prepare(cfg, d / "s0", shard=(0, 2), encoder=enc, log=LOG, quiet=True)
    write_jsonl(d / "f5.jsonl", 6)
    s1 = prepare(cfg, d / "s1", shard=(1, 2), encoder=enc, log=LOG, quiet=True)
    assert "f1.jsonl" in s0["sources"]["src"]["files"] and "f1.jsonl" in s1["sources"]["src"]["files"]
    assert "f5.jsonl" not in s0["sources"]["src"]["files"] + s1["sources"]["src"]["files"]
    with pytest.raises(UserError, match=r"s1 and .*s0: prepared from different input files \(only .*s1 saw "
                                        r"src:f5\.jsonl\).*rerun every shard on the same files"):
        merge(d / "merged", [d / "s0", d / "s1"], log=LOG)
    assert not (d / "merged" / MANIFEST).exists()

    # A file resized between the runs is named with both sizes.
    write_jsonl(d / "f2.jsonl", 5)
    prepare(cfg, d / "s0", shard=(0, 2), encoder=enc, log=LOG, quiet=True)
    with pytest.raises(UserError, match=r"size differs: src:f2\.jsonl \(\d+ vs \d+ bytes\)"):
        merge(d / "merged", [d / "s0", d / "s1"], log=LOG)


def drop_inputs(shard_dir: Path) -> None:
    """The manifest as a Steel before the input digest wrote it."""
    path = shard_dir / MANIFEST
    m = json.loads(path.read_text(encoding="utf-8"))
    m.pop("inputs", None)
    path.write_text(json.dumps(m), encoding="utf-8")


def test_merge_refuses_a_file_read_by_two_shards_without_digests(four_files, enc, caplog):
    d, cfg = four_files
    prepare(cfg, d / "s0", shard=(0, 2), encoder=enc, log=LOG, quiet=True)
    write_jsonl(d / "f5.jsonl", 6)
    prepare(cfg, d / "s1", shard=(1, 2), encoder=enc, log=LOG, quiet=True)
    for s in ("s0", "s1"):
        drop_inputs(d / s)
    with pytest.raises(UserError, match=r"s1: source 'src' file f1\.jsonl was read by .*s0 too"):
        merge(d / "merged", [d / "s0", d / "s1"], log=LOG)
    assert "no input digest" in caplog.text


def test_merge_refuses_a_listed_file_no_shard_read(four_files, enc):
    d, cfg = four_files
    for k in range(2):
        prepare(cfg, d / f"s{k}", shard=(k, 2), encoder=enc, log=LOG, quiet=True)
    path = d / "s1" / MANIFEST
    m = read_manifest(d / "s1")
    m["sources"]["src"]["files"].remove("f4.jsonl")
    path.write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(UserError, match=r"no shard read src:f4\.jsonl"):
        merge(d / "merged", [d / "s0", d / "s1"], log=LOG)
    merge(d / "partial", [d / "s0"], log=LOG, allow_missing=True)  # a shard left out on purpose: not checked


def test_merge_takes_a_file_globbed_twice_in_one_shard_and_refuses_other_csv_quoting(four_files, enc):
    # A glob matching a symlink and its target read the file twice (in two shards, or twice in one, which
    # merge then refused as "read by two shards"): it is read once.
    d, cfg = four_files
    (d / "latest.jsonl").symlink_to(d / "f1.jsonl")
    shards = [prepare(cfg, d / f"s{k}", shard=(k, 2), encoder=enc, log=LOG, quiet=True) for k in range(2)]
    assert sorted(f for s in shards for f in s["sources"]["src"]["files"]) == [f"f{k}.jsonl" for k in range(1, 5)]
    merge(d / "merged", [d / "s0", d / "s1"], log=LOG)
    # Shards listing one file twice (older Steel read it so) still merge when one shard read it twice.
    for s in ("s0", "s1"):
        m = json.loads((d / s / MANIFEST).read_text())
        if "f1.jsonl" in m["sources"]["src"]["files"]:
            m["sources"]["src"]["files"].append("f1.jsonl")
            (d / s / MANIFEST).write_text(json.dumps(m))
    merge(d / "merged2", [d / "s0", d / "s1"], log=LOG)
    # csv_quoting decides which rows are documents: shards read with different values are not merged
    (d / "t.tsv").write_text('text\n"a"\n', encoding="utf-8")
    for k, q in enumerate(("none", "minimal")):
        c = cfg_for(d, [{"name": "tsv", "path": ["t.tsv"], "csv_quoting": q}])
        prepare(c, d / f"q{k}", shard=(k, 2), encoder=enc, log=LOG, quiet=True)
    with pytest.raises(UserError, match="`sources` differs from .*q0's"):
        merge(d / "qm", [d / "q0", d / "q1"], log=LOG)
