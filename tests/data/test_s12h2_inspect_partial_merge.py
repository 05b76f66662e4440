"""`steel data inspect` (and merge's own log) on the output of `steel data merge --allow-missing`: a source whose
files in the given shards were all rejected was a `problem:` (exit status 1) as for a whole input, although its
files in the missing shard may keep records (a shard holding some of a source's files only warns, and the full
input keeps them); and nothing said that shards were missing. The merge now keeps the whole input's listing, so
the accounting is judged as a shard's is, and inspect says which shards the output lacks."""

from __future__ import annotations

import json
import logging

from steel.cli import main as steel_main
from steel.config import from_dict
from steel.data.chunks import read_manifest
from steel.data.config import DataConfig
from steel.data.merge import merge
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.data.s12h2")


def _shards(tmp_path, tok) -> None:
    """Source `web`: bad.jsonl (no `text` field; the larger file: shard 0) and good.jsonl (shard 1)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "bad.jsonl").write_text("".join(json.dumps({"body": f"正文第{k}段，没有文本字段。" * 3}, ensure_ascii=False)
                                           + "\n" for k in range(6)), encoding="utf-8")
    (raw / "good.jsonl").write_text("".join(json.dumps({"text": f"长江第{k}段。"}, ensure_ascii=False) + "\n"
                                            for k in range(3)), encoding="utf-8")
    cfg = {"root": str(raw), "tokenizer": str(tok), "workers": 0, "dedup": {"near": False},
           "sources": [{"name": "web", "path": ["*.jsonl"]}]}
    for i in range(2):
        prepare(from_dict(DataConfig, cfg), tmp_path / f"s{i}", shard=(i, 2), log=LOG, quiet=True)
    assert read_manifest(tmp_path / "s0")["sources"]["web"]["files"] == ["bad.jsonl"]


def test_inspect_of_a_merge_without_a_shard_warns_instead_of_a_problem(tmp_path, qwen_tokenizer_dir, capsys, caplog):
    _shards(tmp_path, qwen_tokenizer_dir)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="test.steel.data.s12h2"):
        merge(tmp_path / "m", [tmp_path / "s0"], log=LOG, allow_missing=True)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("source 'web'")]
    assert said == ["source 'web': all 6 records of the merged shards rejected (missing_field 6), which hold 1 of its 2 "
                    "files; if the other shards keep none either, check its text_field, record_path and format"]
    capsys.readouterr()
    assert steel_main(["data", "inspect", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "problem:" not in out
    assert "warning: merged 1 of 2 shards (--allow-missing): the data of shard(s) 1 is not here\n" in out
    assert ("warning: source 'web': all 6 records of the merged shards rejected (missing_field 6), which hold 1 of its "
            "2 files; if the other shards keep none either, check its text_field, record_path and format") in out


def test_complete_merge_unchanged(tmp_path, qwen_tokenizer_dir, capsys):
    _shards(tmp_path, qwen_tokenizer_dir)
    m = merge(tmp_path / "m", [tmp_path / "s0", tmp_path / "s1"], log=LOG)
    assert m["inputs"]["files"] == read_manifest(tmp_path / "s0")["inputs"]["files"] and m["sources"]["web"]["kept"] == 3
    capsys.readouterr()
    assert steel_main(["data", "inspect", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "merged" not in out and "warning" not in out and "problem" not in out
