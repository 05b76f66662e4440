"""Two data dirs prepared from the same input files hold the same documents, whatever their chunk bytes.

Before, only a byte-identical chunk (head/tail MD5) was refused: `steel data prepare` run again on the same
files with another `chunk_tokens` (or filters, normalization) gave other chunks, and `--add-data` of it, or
both dirs in `data.dirs`, trained every document twice per epoch, silently. The manifests record the input
files (`sources[*].files`, `inputs.digest`): such a pair is refused from them, naming both dirs and a file.
Shards of one prepare (`--shard I/N`) read disjoint files and are not refused; a resume with its own dirs,
`--add-data` given again, and annealing (`replace`) on the same files stay allowed.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import Bytes

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.loader import DataError, PretrainLoader, num_windows
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.s12r1")
T = 16


def write_inputs(root: Path, names: list[str], seed: int = 0, docs: int = 12) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "north", "paper", "lamp"]
    for k, name in enumerate(names):
        lines = [json.dumps({"text": f"tiny {k}"})] + [  # what a length filter drops: shifts every chunk
            json.dumps({"text": f"{name} doc {i}: " + " ".join(rng.choice(words) for _ in range(12))})
            for i in range(docs)]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def prep(root: Path, out: Path, files: list[str], chunk_tokens: int = 300, shard=(0, 1), **over) -> Path:
    cfg = {"root": str(root), "tokenizer": "unused", "chunk_tokens": chunk_tokens, "workers": 0, "filters": [],
           "dedup": {"exact": True, "near": False}, "sources": [{"name": "web", "path": files}]} | over
    prepare(from_dict(DataConfig, cfg), out, shard=shard, encoder=Bytes(), log=LOG, quiet=True)
    return out


def windows(d: Path) -> int:
    m = json.loads((d / "manifest.json").read_text())
    return sum(num_windows(c["tokens"], T) for c in m["chunks"])


@pytest.fixture()
def inputs(tmp_path):
    write_inputs(tmp_path / "raw", ["a.jsonl", "b.jsonl", "c.jsonl", "d.jsonl"])
    return tmp_path / "raw"


@pytest.mark.parametrize("other", [{"chunk_tokens": 500}, {"filters": [{"name": "length", "min_chars": 8}]}])
def test_a_re_prepared_copy_is_refused_at_add_data_and_at_a_fresh_start(tmp_path, inputs, other):
    a = prep(inputs, tmp_path / "A", ["a.jsonl", "b.jsonl"])
    a2 = prep(inputs, tmp_path / "A2", ["a.jsonl", "b.jsonl"], **other)
    # the chunks differ (other chunk bytes): the head/tail MD5 check alone let them in
    ma, ma2 = (json.loads((d / "manifest.json").read_text()) for d in (a, a2))
    assert not {c["md5"] for c in ma["chunks"]} & {c["md5"] for c in ma2["chunks"]}
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    for _ in range(3):
        ld.next_batch()
    state = ld.state_dict()
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    ld.load_state_dict(state)
    with pytest.raises(DataError) as e:
        ld.add_data([a2])
    msg = str(e.value)
    assert str(a2) in msg and str(a) in msg and "a.jsonl" in msg and "data.weights" in msg
    # refused before any change: the run goes on as before
    assert ld.state_dict() == state and ld.total == windows(a) and ld.extra_dirs == []
    # a fresh start listing both (data.dirs, or data.dirs + --add-data at the start)
    with pytest.raises(DataError, match="same input files"):
        PretrainLoader([a, a2], seq_len=T, micro_batch=2, seed=3)
    # a resume whose data.dirs gained a copy of a dir appended with --add-data
    b = prep(inputs, tmp_path / "B", ["c.jsonl"])
    b2 = prep(inputs, tmp_path / "B2", ["c.jsonl"], **other)
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    ld.load_state_dict(state)
    ld.add_data([b])
    state = ld.state_dict()
    ld = PretrainLoader([a, b2], seq_len=T, micro_batch=2, seed=3)
    with pytest.raises(DataError) as e:
        ld.load_state_dict(state)
    assert str(b2) in str(e.value) and f"{b.resolve()} (already in the run)" in str(e.value)


def test_a_dir_that_shares_some_input_files_is_refused(tmp_path, inputs):
    a = prep(inputs, tmp_path / "A", ["a.jsonl", "b.jsonl"])
    b = prep(inputs, tmp_path / "B", ["b.jsonl", "c.jsonl"])  # another listing: b.jsonl again, and a new file
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    with pytest.raises(DataError) as e:
        ld.add_data([b])
    assert str(inputs / "b.jsonl") in str(e.value) and "c.jsonl" not in str(e.value)
    # the new file alone is new data
    c = prep(inputs, tmp_path / "C", ["c.jsonl"])
    assert ld.add_data([c]) == windows(c)


def test_shards_of_one_prepare_are_not_refused_and_count_every_window_once(tmp_path, inputs):
    files = ["a.jsonl", "b.jsonl", "c.jsonl", "d.jsonl"]
    s0 = prep(inputs, tmp_path / "s0", files, shard=(0, 2))
    s1 = prep(inputs, tmp_path / "s1", files, shard=(1, 2))
    m0, m1 = (json.loads((d / "manifest.json").read_text()) for d in (s0, s1))
    assert m0["inputs"]["digest"] == m1["inputs"]["digest"]  # one listing, disjoint files
    assert not set(m0["sources"]["web"]["files"]) & set(m1["sources"]["web"]["files"])
    both = PretrainLoader([s0, s1], seq_len=T, micro_batch=2, seed=3)
    assert both.total == windows(s0) + windows(s1)
    # the second shard appended at a resume: every sample of the epoch once
    ld = PretrainLoader([s0], seq_len=T, micro_batch=1, seed=3)
    seen = [int(ld.next_batch() and ld.last_ids[0]) for _ in range(5)]
    state = ld.state_dict()
    ld = PretrainLoader([s0], seq_len=T, micro_batch=1, seed=3)
    ld.load_state_dict(state)
    assert ld.add_data([s1]) == windows(s1)
    while ld.epoch == 0:
        seen.append(int(ld.next_batch() and ld.last_ids[0]))
    assert sorted(seen) == list(range(windows(s0) + windows(s1)))


def test_a_merge_output_and_its_shard_are_refused_together(tmp_path, inputs):
    from steel.data.merge import merge

    files = ["a.jsonl", "b.jsonl", "c.jsonl", "d.jsonl"]
    shards = [prep(inputs, tmp_path / f"s{k}", files, shard=(k, 2)) for k in range(2)]
    merge(tmp_path / "merged", shards, log=LOG)
    with pytest.raises(DataError):
        PretrainLoader([tmp_path / "merged", shards[1]], seq_len=T, micro_batch=2, seed=3)


def test_same_file_names_under_other_roots_are_other_data(tmp_path):
    write_inputs(tmp_path / "crawl1", ["part-0.jsonl"], seed=1, docs=12)
    write_inputs(tmp_path / "crawl2", ["part-0.jsonl"], seed=2, docs=14)
    a = prep(tmp_path / "crawl1", tmp_path / "A", ["part-0.jsonl"])
    b = prep(tmp_path / "crawl2", tmp_path / "B", ["part-0.jsonl"])
    ld = PretrainLoader([a, b], seq_len=T, micro_batch=2, seed=3)
    assert ld.total == windows(a) + windows(b)


def test_resume_add_data_again_and_anneal_replace_on_the_same_files_stay_allowed(tmp_path, inputs):
    a = prep(inputs, tmp_path / "A", ["a.jsonl", "b.jsonl"])
    b = prep(inputs, tmp_path / "B", ["c.jsonl"])
    a2 = prep(inputs, tmp_path / "A2", ["a.jsonl", "b.jsonl"], chunk_tokens=500)
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    ld.next_batch()
    assert ld.add_data([b]) == windows(b)
    state = ld.state_dict()
    # resumed with the same --add-data, or with the appended dir now listed in data.dirs
    for dirs, again in (([a], [b]), ([a, b], []), ([a, b], [b])):
        r = PretrainLoader(dirs, seq_len=T, micro_batch=2, seed=3)
        r.load_state_dict(state)
        if again:
            assert r.add_data(again) == 0
        assert r.state_dict()["segments"] == state["segments"] and r.total == windows(a) + windows(b)
        r.next_batch()
    # annealing on a re-prepared copy of the same files: the new phase draws from it alone
    r = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    r.load_state_dict(state)
    assert r.add_data([a2], replace=True, phase="anneal") == windows(a2)
    ids = r.global_ids(r.consumed, 2)
    assert np.all(ids >= windows(a) + windows(b))


def test_annealing_mix_on_the_same_files_is_refused_by_check_new_inputs_and_warned_at_the_switch(tmp_path, inputs,
                                                                                              caplog):
    a = prep(inputs, tmp_path / "A", ["a.jsonl", "b.jsonl"])
    a2 = prep(inputs, tmp_path / "A2", ["a.jsonl", "b.jsonl"], chunk_tokens=500)
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    with pytest.raises(DataError, match="same input files"):
        ld.check_new_inputs([a2])  # for the trainer's startup check of anneal.dirs (mode mix)
    with caplog.at_level(logging.WARNING, logger="steel"):
        assert ld.add_data([a2], phase="anneal") == windows(a2)  # hours in: said, not stopped
    assert any("same input files" in r.getMessage() and str(a2) in r.getMessage() for r in caplog.records)
