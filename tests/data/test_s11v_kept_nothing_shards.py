"""`--shard` and a source whose records one shard all rejects (702e676).

A source of two files, one of which holds no `text` field: the unsharded run keeps the other file's records
and exits 0. Its shard holding only the bad file was refused ("all 3 records rejected"), so the sharded run
of the same config could not be merged. Now such a shard warns, naming how many of the source's files it
holds; a shard holding all of a source's files is still refused as the unsharded run is.
"""

from __future__ import annotations

import json
import logging

import pytest

from steel.cli import UserError, main
from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.merge import merge
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.data.s11v")
DOCS = ["钢铁是怎样炼成的，第一章讲的是少年时代。", "The quick brown fox jumps over the lazy dog again.",
        "第三篇文章：长江是中国最长的河流，流经十一个省份。"]


def write(path, field):
    path.write_text("".join(json.dumps({field: t}, ensure_ascii=False) + "\n" for t in DOCS), encoding="utf-8")


def config(root, sources):
    return from_dict(DataConfig, {"root": str(root), "workers": 0, "sources": sources, "dedup": {"near": False}})


def test_a_shard_holding_part_of_a_source_warns_and_the_merge_equals_the_unsharded_run(tmp_path, enc, caplog):
    raw = tmp_path / "raw"
    raw.mkdir()
    write(raw / "a.jsonl", "text")
    write(raw / "b.jsonl", "body")  # every record: missing_field
    cfg = config(raw, [{"name": "web", "path": ["*.jsonl"]}])
    whole = prepare(cfg, tmp_path / "whole", encoder=enc, log=LOG, quiet=True)
    assert whole["sources"]["web"]["kept"] == 3 and whole["sources"]["web"]["rejected"] == {"missing_field": 3}
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        parts = [prepare(cfg, tmp_path / f"s{i}", encoder=enc, log=LOG, quiet=True, shard=(i, 2)) for i in range(2)]
    assert sorted(p["sources"]["web"]["kept"] for p in parts) == [0, 3]
    bad = next(i for i, p in enumerate(parts) if p["sources"]["web"]["kept"] == 0)
    assert parts[bad]["sources"]["web"]["files"] == ["b.jsonl"]
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("source ")] == [
        "source 'web': all 3 records of this shard rejected (missing_field 3), which holds 1 of its 2 files; if the "
        "other shards keep none either, check its text_field, record_path and format"]
    merged = merge(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"], log=LOG)
    assert merged["total_tokens"] == whole["total_tokens"]
    assert {k: merged["sources"]["web"][k] for k in ("read", "kept", "rejected")} == {
        "read": 6, "kept": 3, "rejected": {"missing_field": 3}}
    # inspect of that shard: a warning, not a problem (exit 0)
    assert main(["data", "inspect", str(tmp_path / f"s{bad}")]) == 0


def test_a_shard_holding_all_of_a_rejected_source_is_still_refused(tmp_path, enc):
    raw = tmp_path / "raw"
    raw.mkdir()
    write(raw / "a.jsonl", "text")
    write(raw / "b.jsonl", "body")
    cfg = config(raw, [{"name": "good", "path": ["a.jsonl"]}, {"name": "bad", "path": ["b.jsonl"]}])
    outcomes = []
    for i in range(2):
        try:
            outcomes.append(prepare(cfg, tmp_path / f"s{i}", encoder=enc, log=LOG, quiet=True, shard=(i, 2)) and "ok")
        except UserError as e:
            outcomes.append(str(e))
    assert sorted(outcomes)[0] == "ok"
    assert sorted(outcomes)[1].startswith("source 'bad': all 3 records rejected (missing_field 3); check its text_field")
    with pytest.raises(UserError, match="source 'bad': all 3 records rejected"):
        prepare(cfg, tmp_path / "whole", encoder=enc, log=LOG, quiet=True)
