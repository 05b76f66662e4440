"""A manifest's chunk names drive what the swap deletes and moves (OUT/NAME): one naming a path out of its directory
(`../x.bin`, a hand-edited or corrupt manifest, or a shard's from elsewhere) is refused with the manifest and the entry
named. Before, a prepare or `merge --overwrite` over such an OUT deleted the file outside OUT in its swap, and a merge
of such a shard linked a file from outside the shard into OUT itself, past its stage (review V3)."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from test_s15c2_merge_swap_kill import config as merge_config
from test_s15c2_merge_swap_kill import write_docs as merge_docs
from test_s15c_prepare_swap_kill import NEW_FP, config, write_docs

from steel.cli import UserError
from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig
from steel.data.merge import merge
from steel.data.prepare import prepare

LOG = logging.getLogger("steel.test.s15v3")


class Bytes:
    eos_id, vocab_size, special_ids, fingerprint = 0, 257, {}, NEW_FP

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


def point_out(d, victim) -> None:
    """`d`'s manifest names its first chunk `../VICTIM` (the file moved there: the MD5 still matches)."""
    m = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    shutil.move(d / m["chunks"][0]["file"], victim)
    m["chunks"][0]["file"] = f"../{victim.name}"
    (d / "manifest.json").write_text(json.dumps(m), encoding="utf-8")


def test_a_rerun_over_a_manifest_naming_a_file_outside_out_deletes_nothing_there(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    write_docs(root)
    out, victim = tmp_path / "out", tmp_path / "victim.bin"
    cfg = from_dict(DataConfig, config(root, 450, ["a", "c"], False))
    prepare(cfg, out, encoder=Bytes(), log=LOG, quiet=True)
    point_out(out, victim)
    kept = victim.read_bytes()
    with pytest.raises(ConfigError, match=r"manifest\.json: chunks\[0\]\.file '\.\./victim\.bin' is not a file name"):
        prepare(cfg, out, encoder=Bytes(), log=LOG, quiet=True)
    assert victim.read_bytes() == kept
    other = tmp_path / "other"  # a merge --overwrite of it over OUT
    prepare(cfg, other, encoder=Bytes(), log=LOG, quiet=True)
    with pytest.raises(ConfigError, match=r"chunks\[0\]\.file '\.\./victim\.bin' is not a file name"):
        merge(out, [str(other)], log=LOG, overwrite=True)
    assert victim.read_bytes() == kept


def test_a_shard_naming_a_chunk_outside_it_is_refused(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    merge_docs(root)
    cfg = from_dict(DataConfig, merge_config(root, 450, {"a": ["a1.jsonl", "a2.jsonl"], "c": ["c.jsonl"]}))
    dirs = [tmp_path / f"s{i}" for i in range(2)]
    for i, d in enumerate(dirs):
        prepare(cfg, d, encoder=Bytes(), shard=(i, 2), log=LOG, quiet=True)
    point_out(dirs[1], tmp_path / "elsewhere.bin")
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"s1/manifest\.json: chunks\[0\]\.file '\.\./elsewhere\.bin' is not a file"):
        merge(out, [str(d) for d in dirs], log=LOG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.bin", "in", "out", "s0", "s1"]
    assert sorted(p.name for p in out.iterdir()) == [".steel.lock"]
