"""The merged manifest's `dedup.unicode` names every Unicode version its shards hashed under."""

from __future__ import annotations

import json
import logging
import unicodedata

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.merge import merge
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.data.r2b")


def test_merged_manifest_names_every_shards_unicode_version(tmp_path, enc):
    for i in range(4):
        (tmp_path / f"p{i}.jsonl").write_text(json.dumps({"text": f"doc {i} shared text"}) + "\n")
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": "unused", "workers": 0,
                                 "sources": [{"name": "p", "path": ["p*.jsonl"]}]})
    dirs = [tmp_path / f"s{k}" for k in range(2)]
    for k, d in enumerate(dirs):
        prepare(cfg, d, shard=(k, 2), encoder=enc, log=LOG, quiet=True)
    m = json.loads((dirs[1] / "manifest.json").read_text(encoding="utf-8"))
    m["dedup"]["unicode"] = "99.0.0"  # shard 1 prepared under another Python
    (dirs[1] / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    merged = merge(tmp_path / "m", dirs, log=LOG)
    # before: the first shard's version alone, as if every hash had been folded with its tables
    assert merged["dedup"]["unicode"] == f"{unicodedata.unidata_version}, 99.0.0"
    on_disk = json.loads((tmp_path / "m" / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["dedup"]["unicode"] == merged["dedup"]["unicode"]
