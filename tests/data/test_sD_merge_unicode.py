"""Shards hash their documents after NFC/NFKC and case folding, whose tables are Python's Unicode data:
prepare records that version; merge warns when the shards' versions differ and names them all."""

from __future__ import annotations

import json
import logging
import unicodedata

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.merge import merge
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.data.sD")


def test_merge_warns_when_shards_hashed_under_other_unicode_data(tmp_path, enc, caplog):
    # NOTE: e.g. "\ua7cb".casefold() is itself under Python 3.11-3.13 (Unicode 14-15.1) and "\u0264" under
    # 3.14 (Unicode 16): one document holding it has two exact hashes, and merge kept both copies unwarned.
    for i in range(4):
        (tmp_path / f"p{i}.jsonl").write_text(json.dumps({"text": f"doc {i} shared text"}) + "\n")
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": "unused", "workers": 0,
                                 "sources": [{"name": "p", "path": ["p*.jsonl"]}]})
    dirs = [tmp_path / f"s{k}" for k in range(2)]
    for k, d in enumerate(dirs):
        m = prepare(cfg, d, shard=(k, 2), encoder=enc, log=LOG, quiet=True)
        assert m["dedup"]["unicode"] == unicodedata.unidata_version
    with caplog.at_level(logging.WARNING):
        merged = merge(tmp_path / "m1", dirs, log=LOG)
    assert "Unicode" not in caplog.text  # same Python: no warning
    assert merged["dedup"]["unicode"] == unicodedata.unidata_version
    m = json.loads((dirs[1] / "manifest.json").read_text(encoding="utf-8"))
    m["dedup"]["unicode"] = "99.0.0"
    (dirs[1] / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        merged = merge(tmp_path / "m2", dirs, log=LOG)
    # the merged manifest names every version (it kept the first shard's alone, as if all were hashed so)
    assert merged["dedup"]["unicode"] == f"{unicodedata.unidata_version}, 99.0.0"
    on_disk = json.loads((tmp_path / "m2" / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["dedup"]["unicode"] == merged["dedup"]["unicode"]
    assert (f"{dirs[1]} normalized and hashed its documents with Unicode 99.0.0" in caplog.text
            and f"{dirs[0]} with Unicode {unicodedata.unidata_version}" in caplog.text)
