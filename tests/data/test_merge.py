"""`steel data merge` finishes exact dedup across shards: sharded prepare + merge keeps the same documents
as one unsharded prepare, rewriting only the chunks that lose documents; shards without duplicates merge
bit for bit."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from steel.cli import main as steel_main
from steel.config import from_dict, to_dict
from steel.data.chunks import DOCUMENTS, SIGNATURES, head_tail_md5, read_chunk, read_documents, read_manifest
from steel.data.config import DataConfig
from steel.data.merge import merge
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.data")


def cfg_for(d: Path, sources: list[dict], chunk_tokens: int = 7) -> DataConfig:
    return from_dict(DataConfig, {"root": str(d), "tokenizer": "unused", "chunk_tokens": chunk_tokens, "workers": 0,
                                  "filters": [], "sources": sources})


def write_jsonl(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")


def docs_per_source(out: Path, m: dict, eos: int) -> dict[str, list[tuple[int, ...]]]:
    """Each source's documents (token tuples, EOS included), sorted: the order differs between runs."""
    res = {}
    for name in m["sources"]:
        parts = [np.asarray(read_chunk(out / c["file"])[1]) for c in m["chunks"] if c["source"] == name]
        toks = np.concatenate(parts).tolist() if parts else []
        docs, cur = [], []
        for t in toks:
            cur.append(t)
            if t == eos:
                docs.append(tuple(cur))
                cur = []
        assert not cur, name  # every document ends with EOS, also across rewritten chunks
        res[name] = sorted(docs)
    return res


def accounting(m: dict) -> dict:
    return {k: {**v, "files": sorted(v["files"])} for k, v in m["sources"].items()}


@pytest.fixture()
def dup_inputs(tmp_path):
    """Eight files where the same texts recur in every shard, in cased/spaced variants (the same after
    folding, different tokens: only the copy an unsharded run reads first is right), long enough to span
    several 7-token chunks, within files, across files and across sources."""
    long = "这是一篇很长的重复文档，它跨越好几个块文件。" * 3
    for i in range(8):
        texts = [f"file {i} unique doc {j} 独有" for j in range(3)]
        shared = "shared doc 共享的文档"
        texts.insert(i % 3, shared[:i] + shared[i].upper() + shared[i + 1 :] + " " * (i % 2))  # one copy per case
        texts.append(long if i % 3 else long + "  ")
        if i == 5:
            texts += [f"file {i} unique doc 0 独有".upper(), "x" * (40 + i)]  # a within-file duplicate too
        write_jsonl(tmp_path / f"part{i}.jsonl", texts)
    write_jsonl(tmp_path / "other.jsonl", ["SHARED DOC 共享的文档", "only in other 其他", long])
    return tmp_path, [{"name": "parts", "path": ["part*.jsonl"]}, {"name": "other", "path": ["other.jsonl"]}]


@pytest.mark.parametrize("count", [2, 3])
def test_sharded_merge_equals_unsharded(dup_inputs, enc, count):
    d, sources = dup_inputs
    cfg = cfg_for(d, sources)
    full = prepare(cfg, d / "full", encoder=enc, log=LOG, quiet=True)
    shard_dirs = [d / f"s{k}" for k in range(count)]
    shards = [prepare(cfg, s, shard=(k, count), encoder=enc, log=LOG, quiet=True) for k, s in enumerate(shard_dirs)]
    before = {s: {p.name: p.read_bytes() for p in s.glob("*.bin")} for s in shard_dirs}
    assert sum(s["sources"]["parts"]["kept"] for s in shards) > full["sources"]["parts"]["kept"]
    # part0.jsonl (whose copies win) is not in shard 0 here: "the first shard keeps its copy" would be wrong
    assert "part0.jsonl" not in shards[0]["sources"]["parts"]["files"]

    merged = merge(d / "merged", shard_dirs[::-1], log=LOG)  # the order of the inputs does not matter
    assert accounting(merged) == accounting(full)
    assert merged["total_tokens"] == full["total_tokens"]
    assert docs_per_source(d / "merged", merged, enc.eos_id) == docs_per_source(d / "full", full, enc.eos_id)
    dd = merged["dedup"]
    assert dd["cross_shard_exact_duplicates"] == dd["cross_shard_exact_removed"] > 0
    for c in merged["chunks"]:
        assert c["tokens"] > 0 and head_tail_md5(d / "merged" / c["file"]) == c["md5"]
        assert read_chunk(d / "merged" / c["file"])[0].num_tokens == c["tokens"]
    # Only chunks that lost documents were rewritten: the others are the shards' files (hard links).
    shard_chunks = {c["file"]: (s, c) for s, m in zip(shard_dirs, shards) for c in m["chunks"]}
    same = [c for c in merged["chunks"] if c == shard_chunks[c["file"]][1]]
    assert 0 < dd["rewritten_chunks"] == len(shard_chunks) - len(same)
    assert set(shard_chunks) - {c["file"] for c in merged["chunks"]}  # chunks wholly inside a removed copy: gone
    for c in same:
        assert (d / "merged" / c["file"]).samefile(shard_chunks[c["file"]][0] / c["file"])
    # The inputs are untouched.
    assert before == {s: {p.name: p.read_bytes() for p in s.glob("*.bin")} for s in shard_dirs}
    # documents.npy of the merge describes the merged chunks (it is checked against them on read) and
    # holds what the unsharded run's does.
    docs, full_docs = read_documents(d / "merged", merged), read_documents(d / "full", full)
    assert sorted(docs[["hash", "order", "tokens", "source"]].tolist()) == sorted(full_docs.tolist())
    assert steel_main(["data", "inspect", str(d / "merged")]) == 0


def test_merge_without_duplicates_is_unchanged(tmp_path, enc):
    for i in range(4):
        write_jsonl(tmp_path / f"part{i}.jsonl", [f"file {i} doc {j} 内容不同" for j in range(6)])
    cfg = cfg_for(tmp_path, [{"name": "parts", "path": ["part*.jsonl"]}], chunk_tokens=10)
    dirs = [tmp_path / f"s{k}" for k in range(2)]
    shards = [prepare(cfg, s, shard=(k, 2), encoder=enc, log=LOG, quiet=True) for k, s in enumerate(dirs)]
    merged = merge(tmp_path / "merged", dirs, log=LOG)
    assert merged["chunks"] == shards[0]["chunks"] + shards[1]["chunks"]
    for s, m in zip(dirs, shards):
        for c in m["chunks"]:
            assert (tmp_path / "merged" / c["file"]).read_bytes() == (s / c["file"]).read_bytes()
    assert merged["dedup"]["cross_shard_exact_duplicates"] == 0 and merged["dedup"]["rewritten_chunks"] == 0
    full = prepare(cfg, tmp_path / "full", encoder=enc, log=LOG, quiet=True)
    assert accounting(merged) == accounting(full)
    assert (tmp_path / "merged" / DOCUMENTS).exists()


def test_merge_refuses_shards_of_different_configs(dup_inputs, enc):
    # documents.npy numbers sources by position: shard 1 prepared with the sources listed b, a was read
    # as a, b, and dedup and the per-source accounting came out wrong without a word.
    from steel.cli import UserError

    d, sources = dup_inputs
    dirs = [d / f"s{k}" for k in range(2)]
    prepare(cfg_for(d, sources), dirs[0], shard=(0, 2), encoder=enc, log=LOG, quiet=True)
    prepare(cfg_for(d, sources[::-1]), dirs[1], shard=(1, 2), encoder=enc, log=LOG, quiet=True)
    with pytest.raises(UserError, match=r"s1: sources \['other', 'parts'\] differ from .*s0's \['parts', 'other'\]"):
        merge(d / "merged", dirs, log=LOG)
    other_filters = from_dict(DataConfig, {**to_dict(cfg_for(d, sources)), "filters": [{"name": "length", "min_chars": 20}]})
    prepare(other_filters, dirs[1], shard=(1, 2), encoder=enc, log=LOG, quiet=True)
    with pytest.raises(UserError, match=r"s1: `filters` differs from .*s0's"):
        merge(d / "merged", dirs, log=LOG)
    # what changes no document may differ: chunk size, workers
    prepare(cfg_for(d, sources, chunk_tokens=11), dirs[1], shard=(1, 2), encoder=enc, log=LOG, quiet=True)
    assert merge(d / "merged", dirs, log=LOG)["sources"].keys() == {"parts", "other"}


def test_merge_of_old_shards_without_documents_only_reports(dup_inputs, enc, caplog):
    d, sources = dup_inputs
    cfg = cfg_for(d, sources)
    dirs = [d / f"s{k}" for k in range(2)]
    shards = [prepare(cfg, s, shard=(k, 2), encoder=enc, log=LOG, quiet=True) for k, s in enumerate(dirs)]
    (dirs[1] / DOCUMENTS).unlink()
    with caplog.at_level(logging.WARNING):
        merged = merge(d / "merged", dirs, log=LOG)
    assert "not removed" in caplog.text and DOCUMENTS in caplog.text
    assert merged["chunks"] == shards[0]["chunks"] + shards[1]["chunks"]
    assert "cross_shard_exact_removed" not in merged["dedup"]


def test_near_duplicates_across_shards(tmp_path, enc):
    """Near copies (one word changed) in files of different shards: the merge drops them as an unsharded
    run does (no near-duplicate chains here, where the two can differ: see merge._near_duplicates)."""
    def text(k: int, changed: int = -1) -> str:
        return " ".join(f"词{w}" if w != changed else "替换" for w in range(k * 1000, k * 1000 + 120))

    for i in range(6):
        docs = [text(10 * i + j) for j in range(3)] + [text(99, changed=99000 + i)]  # one word off in each file
        write_jsonl(tmp_path / f"part{i}.jsonl", docs)
    cfg = cfg_for(tmp_path, [{"name": "parts", "path": ["part*.jsonl"]}], chunk_tokens=50)
    full = prepare(cfg, tmp_path / "full", encoder=enc, log=LOG, quiet=True)
    assert full["sources"]["parts"]["filtered"]["dedup_near"] == 5
    dirs = [tmp_path / f"s{k}" for k in range(3)]
    shards = [prepare(cfg, s, shard=(k, 3), encoder=enc, log=LOG, quiet=True) for k, s in enumerate(dirs)]
    assert sum(s["sources"]["parts"]["filtered"]["dedup_near"] for s in shards) < 5
    exact_only = merge(tmp_path / "merged", dirs, log=LOG)  # the default: near dedup stays per shard
    assert "cross_shard_near_removed" not in exact_only["dedup"]
    assert exact_only["sources"]["parts"]["kept"] > full["sources"]["parts"]["kept"]
    assert steel_main(["data", "merge", str(tmp_path / "merged"), *map(str, dirs), "--near", "--overwrite"]) == 0
    merged = read_manifest(tmp_path / "merged")
    assert accounting(merged) == accounting(full)
    assert docs_per_source(tmp_path / "merged", merged, enc.eos_id) == docs_per_source(tmp_path / "full", full,
                                                                                       enc.eos_id)
    assert merged["dedup"]["cross_shard_near_removed"] > 0 and merged["dedup"]["cross_shard_exact_removed"] == 0
    sigs = np.load(tmp_path / "merged" / SIGNATURES)
    assert sigs.shape == (len(read_documents(tmp_path / "merged", merged)), 128)
    assert not (tmp_path / "full" / SIGNATURES).exists()  # only shards pay for them (512 B per document)
    assert steel_main(["data", "merge", str(tmp_path / "m2"), str(tmp_path / "full"), "--near"]) == 2


def test_merge_warns_when_shards_come_from_other_steel_code(dup_inputs, enc, caplog):
    # Filters, normalization and dedup change between versions: shards prepared by two versions of Steel
    # from one config may follow two rules, which the config comparison cannot see.
    d, sources = dup_inputs
    cfg = cfg_for(d, sources)
    dirs = [d / f"s{k}" for k in range(2)]
    for k, s in enumerate(dirs):
        prepare(cfg, s, shard=(k, 2), encoder=enc, log=LOG, quiet=True)
    with caplog.at_level(logging.WARNING):
        merge(d / "merged", dirs, log=LOG)
    assert "prepared by steel" not in caplog.text  # same code: no warning
    m = json.loads((dirs[1] / "manifest.json").read_text(encoding="utf-8"))
    m["environment"]["git"] = "0000000"
    (dirs[1] / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        merge(d / "merged2", dirs, log=LOG)
    assert f"{dirs[1]} was prepared by steel" in caplog.text and "(git 0000000)" in caplog.text
