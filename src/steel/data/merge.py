"""`steel data merge OUT DIR...`: join the outputs of `steel data prepare --shard I/N` into one data dir.

Chunk files are hard-linked into OUT (copied when OUT is on another file system) after their
head/tail MD5 is checked against their manifest; the per-source accounting is summed. Dedup ran
within each shard only: merge does not remove cross-shard duplicates, but it counts the exact ones
from the hashes each shard stored (`dedup_exact_hashes.npy`) and reports them in the manifest.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from steel.cli import UserError
from steel.data.chunks import ChunkFormatError, head_tail_md5, read_manifest, write_manifest
from steel.data.prepare import DEDUP_HASHES, _clear_previous


def merge(out_dir: str | Path, dirs: list[str | Path], log=None) -> dict:
    out_dir = Path(out_dir)
    if not dirs:
        raise UserError("merge: give at least one data directory")
    manifests = []
    for d in dirs:
        try:
            manifests.append((Path(d), read_manifest(d)))
        except ChunkFormatError as e:
            raise UserError(str(e)) from None
    first_dir, first = manifests[0]
    tok = first["tokenizer"]
    shards_seen: dict[int, Path] = {}
    for d, m in manifests:
        if m["tokenizer"]["fingerprint"] != tok["fingerprint"]:
            raise UserError(f"{d}: tokenizer fingerprint differs from {first_dir}'s; cannot merge")
        sh = m.get("shard", {"index": 0, "count": 1})
        if sh["count"] != first.get("shard", {}).get("count", 1):
            raise UserError(f"{d}: shard count {sh['count']} differs from {first_dir}'s")
        if sh["index"] in shards_seen:
            raise UserError(f"{d}: shard {sh['index']} given twice (also {shards_seen[sh['index']]})")
        shards_seen[sh["index"]] = d
    count = first.get("shard", {}).get("count", 1)
    missing = sorted(set(range(count)) - set(shards_seen))
    if missing and log:
        log.warning("merging %d of %d shards; missing shard(s) %s", len(shards_seen), count, missing)

    for d, _ in manifests:  # writing into an input would unlink its chunks before linking them
        if d.resolve() == out_dir.resolve():
            raise UserError(f"{d}: the output directory cannot be one of the inputs")
    out_dir.mkdir(parents=True, exist_ok=True)
    # A rerun into the same directory replaces its previous output, as `prepare` does (no stale chunks).
    _clear_previous(out_dir, log or logging.getLogger("steel.data"))
    chunks, names = [], set()
    sources: dict[str, dict] = {}
    for d, m in manifests:
        for c in m["chunks"]:
            if c["file"] in names:
                raise UserError(f"{d}: chunk name {c['file']} occurs in two inputs")
            names.add(c["file"])
            src = d / c["file"]
            if head_tail_md5(src) != c["md5"]:
                raise UserError(f"{src}: MD5 differs from its manifest (corrupt or replaced)")
            dst = out_dir / c["file"]
            if dst.exists():
                dst.unlink()
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            chunks.append(dict(c))
        for name, s in m["sources"].items():
            acc = sources.setdefault(name, {"read": 0, "kept": 0, "filtered": {}, "rejected": {}, "weight": s["weight"],
                                           "kind": s["kind"], "tokens": 0, "files": []})
            if (acc["weight"], acc["kind"]) != (s["weight"], s["kind"]):
                raise UserError(f"{d}: source {name!r} has weight/kind {s['weight']}/{s['kind']}, "
                                f"another input {acc['weight']}/{acc['kind']}")
            for k in ("read", "kept", "tokens"):
                acc[k] += s[k]
            for k in ("filtered", "rejected"):
                for reason, n in s[k].items():
                    acc[k][reason] = acc[k].get(reason, 0) + n
            acc["files"] += s.get("files", [])
    for name, s in sources.items():
        assert s["read"] == s["kept"] + sum(s["filtered"].values()) + sum(s["rejected"].values()), name

    hashes = [np.load(d / DEDUP_HASHES) for d, m in manifests if (d / DEDUP_HASHES).exists()]
    cross = None
    if len(hashes) == len(manifests):
        allh = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        cross = int(len(allh) - len(np.unique(allh)))
        np.save(out_dir / DEDUP_HASHES, np.unique(allh))
    if (first_dir / "tokenizer").is_dir() and not (out_dir / "tokenizer").exists():
        shutil.copytree(first_dir / "tokenizer", out_dir / "tokenizer")
    manifest = {
        "total_tokens": sum(c["tokens"] for c in chunks),
        "chunks": chunks,
        "tokenizer": tok,
        "sources": sources,
        "shard": {"index": 0, "count": 1, "merged_shards": sorted(shards_seen), "of": count},
        "dedup": {**first.get("dedup", {}), "scope": "per shard",
                  "cross_shard_exact_duplicates": cross},
        "config": first.get("config"),
        "merged_from": [str(d) for d, _ in manifests],
    }
    write_manifest(out_dir, manifest)
    if log:
        log.info("merged %d dirs: %d chunks, %d tokens; cross-shard exact duplicates: %s",
                 len(manifests), len(chunks), manifest["total_tokens"], cross)
    return manifest
