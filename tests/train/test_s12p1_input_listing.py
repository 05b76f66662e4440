"""Data dirs prepared from the same input files are refused in one run when the prepare's root was relative too.

Before, a manifest recorded `config.root` as given (`root: raw`, or none: the config's directory) and the file
sizes (`inputs.files`) in shards only, so for the common relative root the loader had only the input digest: a
re-prepare whose glob found one more file (another digest) was let in, and every document of the other files was
trained twice per epoch. The manifest now records the resolved absolute root (`inputs.root`), the listing with
sizes (`inputs.files`) for every prepare and merge, and the absolute paths of files outside the root named
relative to the working directory (`inputs.elsewhere`). Manifests without them (an older Steel's) are judged as
before.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

import pytest
from train_fixtures import Bytes

from steel.cli import main as steel_main
from steel.config import from_dict
from steel.data.chunks import read_manifest, write_manifest
from steel.data.config import DataConfig
from steel.data.loader import DataError, PretrainLoader, dir_inputs, num_windows
from steel.data.merge import merge
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.s12p1")
T = 16
NEW_FIELDS = ("root", "files", "elsewhere")


def write_inputs(root: Path, names: list[str], docs: int = 12) -> None:
    root.mkdir(parents=True, exist_ok=True)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "north", "paper", "lamp"]
    for k, name in enumerate(names):
        rng = random.Random(name)
        lines = [json.dumps({"text": f"{Path(name).stem} doc {i}: " + " ".join(rng.choice(words) for _ in range(12))})
                 for i in range(docs + k)]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def prep(root: str, out: Path, paths: list[str], chunk_tokens: int = 300, shard=(0, 1)) -> Path:
    cfg = {"root": root, "tokenizer": "unused", "chunk_tokens": chunk_tokens, "workers": 0, "filters": [],
           "dedup": {"exact": True, "near": False}, "sources": [{"name": "web", "path": paths}]}
    prepare(from_dict(DataConfig, cfg), out, shard=shard, encoder=Bytes(), log=LOG, quiet=True)
    return out


def windows(*dirs: Path) -> int:
    return sum(num_windows(c["tokens"], T) for d in dirs for c in read_manifest(d)["chunks"])


def strip_new_fields(d: Path) -> None:
    """`d`'s manifest as a Steel before `inputs.root`/`files`/`elsewhere` wrote it (shards kept `files`)."""
    m = read_manifest(d)
    for k in NEW_FIELDS if m["shard"]["count"] == 1 else ("root", "elsewhere"):
        m["inputs"].pop(k, None)
    write_manifest(d, {k: v for k, v in m.items() if k not in ("format", "version")})


@pytest.fixture()
def cwd(tmp_path, monkeypatch):
    """tmp_path as the working directory, with raw/{a,b,c}.jsonl: `root: raw` is relative to it."""
    write_inputs(tmp_path / "raw", ["a.jsonl", "b.jsonl", "c.jsonl"])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_re_prepare_with_one_more_file_under_a_relative_root_is_refused(cwd):
    a = prep("raw", cwd / "A", ["a.jsonl", "b.jsonl"])
    (cwd / "raw" / "a2.jsonl").write_text((cwd / "raw" / "c.jsonl").read_text())  # the glob finds one more
    a2 = prep("raw", cwd / "A2", ["a*.jsonl", "b.jsonl"], chunk_tokens=500)
    ma, ma2 = read_manifest(a), read_manifest(a2)
    assert ma["config"]["root"] == "raw"  # as given, for reproducibility
    assert ma["inputs"]["root"] == str((cwd / "raw").resolve())
    size = (cwd / "raw" / "a.jsonl").stat().st_size
    assert ma["inputs"]["files"] == {"web": [["a.jsonl", size], ["b.jsonl", (cwd / "raw" / "b.jsonl").stat().st_size]]}
    assert ma["inputs"]["digest"] != ma2["inputs"]["digest"]  # the digest rule alone let it in
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    ld.next_batch()
    state = ld.state_dict()
    with pytest.raises(DataError) as e:
        ld.add_data([a2])
    msg = str(e.value)
    assert "same input files" in msg and str(cwd / "raw" / "a.jsonl") in msg and "the same paths" in msg
    assert ld.state_dict() == state and ld.total == windows(a)
    with pytest.raises(DataError, match="same input files"):
        PretrainLoader([a, a2], seq_len=T, micro_batch=2, seed=3)
    # the new file alone is new data
    c = prep("raw", cwd / "C", ["c.jsonl"])
    assert ld.add_data([c]) == windows(c)


def test_the_root_is_found_from_another_working_directory_and_files_outside_it_by_path(cwd, monkeypatch):
    (cwd / "cfg").mkdir()
    write_inputs(cwd / "other", ["x.jsonl"])
    a = prep("raw", cwd / "A", ["a.jsonl", "../other/x.jsonl"])
    ma = read_manifest(a)
    assert ma["sources"]["web"]["files"] == ["a.jsonl", "raw/../other/x.jsonl"]  # relative to the working dir
    assert ma["inputs"]["elsewhere"] == {"raw/../other/x.jsonl": str((cwd / "other" / "x.jsonl").resolve())}
    monkeypatch.chdir(cwd / "cfg")
    b = prep("../other", cwd / "B", ["x.jsonl"])  # the same file, from another working directory and root
    c = prep("..", cwd / "C", ["raw/b.jsonl"])  # another file under an overlapping root: other data
    assert read_manifest(b)["inputs"]["root"] == str((cwd / "other").resolve())
    ld = PretrainLoader([a, c], seq_len=T, micro_batch=2, seed=3)
    assert ld.total == windows(a, c)
    with pytest.raises(DataError, match=r"same input files: both read .*other/x\.jsonl"):
        ld.add_data([b])
    d = prep("..", cwd / "D", ["raw/a.jsonl"])  # a.jsonl by another root: its absolute path is the same
    with pytest.raises(DataError, match="same input files"):
        ld.add_data([d])


def test_shards_of_one_prepare_go_together_and_their_merge_is_judged_by_path(cwd):
    files = ["a.jsonl", "b.jsonl", "c.jsonl"]
    s0, s1 = (prep("raw", cwd / f"s{k}", files, shard=(k, 2)) for k in range(2))
    both = PretrainLoader([s0, s1], seq_len=T, micro_batch=2, seed=3)
    assert both.total == windows(s0, s1)
    m = merge(cwd / "merged", [s0, s1], log=LOG)
    assert m["inputs"]["root"] == str((cwd / "raw").resolve())
    assert m["inputs"]["files"] == read_manifest(s0)["inputs"]["files"]
    (cwd / "raw" / "d.jsonl").write_text("{\"text\": \"one more file\"}\n")
    again = prep("raw", cwd / "again", ["*.jsonl"], chunk_tokens=500)  # another listing: another digest
    ld = PretrainLoader([cwd / "merged"], seq_len=T, micro_batch=2, seed=3)
    with pytest.raises(DataError, match="the same paths"):
        ld.add_data([again])
    # a shard prepared under another root (another mount of the same files): its files by their own root
    shutil.copytree(cwd / "raw", cwd / "mount2", ignore=shutil.ignore_patterns("d.jsonl"))
    t1 = prep("mount2", cwd / "t1", files, shard=(1, 2))
    m = merge(cwd / "merged2", [s0, t1], log=LOG)
    got = dir_inputs(cwd / "merged2", m)
    want = {str(cwd.resolve() / "raw" / f) for f in read_manifest(s0)["sources"]["web"]["files"]}
    want |= {str(cwd.resolve() / "mount2" / f) for f in read_manifest(t1)["sources"]["web"]["files"]}
    assert set(got.paths) == want


def test_old_manifests_load_and_are_judged_as_before(cwd):
    a = prep("raw", cwd / "A", ["a.jsonl", "b.jsonl"])
    a2 = prep("raw", cwd / "A2", ["a.jsonl", "b.jsonl", "c.jsonl"], chunk_tokens=500)
    same = prep("raw", cwd / "same", ["a.jsonl", "b.jsonl"], chunk_tokens=500)
    for d in (a, a2, same):
        strip_new_fields(d)
        assert not set(read_manifest(d)["inputs"]) & set(NEW_FIELDS)
    # a relative root and no listing: only the digest rule (the limit of such manifests)
    assert PretrainLoader([a, a2], seq_len=T, micro_batch=2, seed=3).total == windows(a, a2)
    with pytest.raises(DataError, match="equal inputs.digest"):
        PretrainLoader([a, same], seq_len=T, micro_batch=2, seed=3)
    # an old manifest with an absolute config.root is still judged by it, against a new one too
    b = prep(str(cwd / "raw"), cwd / "B", ["a.jsonl"])
    strip_new_fields(b)
    new = prep("raw", cwd / "new", ["a.jsonl", "c.jsonl"], chunk_tokens=500)
    with pytest.raises(DataError, match="the same paths"):
        PretrainLoader([b, new], seq_len=T, micro_batch=2, seed=3)
    # old shards (a listing, no root) still go together and merge; inspect takes old and new manifests
    s0, s1 = (prep("raw", cwd / f"s{k}", ["a.jsonl", "b.jsonl", "c.jsonl"], shard=(k, 2)) for k in range(2))
    for d in (s0, s1):
        strip_new_fields(d)
    assert PretrainLoader([s0, s1], seq_len=T, micro_batch=2, seed=3).total == windows(s0, s1)
    m = merge(cwd / "merged", [s0, s1], log=LOG)
    assert "root" not in m["inputs"] and PretrainLoader([cwd / "merged"], seq_len=T, micro_batch=2, seed=3).total
    for d in (a, new, s0, cwd / "merged"):
        assert steel_main(["data", "inspect", str(d)]) == 0
