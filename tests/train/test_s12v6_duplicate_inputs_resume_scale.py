"""The duplicate-input rule (two data dirs prepared from the same input files) at a resume and at scale.

A run started before the rule existed may list such a pair in data.dirs: its data order holds both dirs'
samples, so a resume with one of them dropped is refused (a registered chunk missing), and the constructor
refused the pair itself: the run could not go on at all. With `resume=True` (the trainer at a resume) the pair
is judged by `load_state_dict`: drawn from since the start, it is warned about and the run resumes exactly; a
copy new to the run is still refused.

The check compared every pair of dirs, each over all its files: with 1,000 dirs of 100 files the startup spent 3
minutes in it (10k dirs: hours). Dirs are now compared only when they name a common file.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import steel.data.loader as loader
from steel.data.loader import DataError, PretrainLoader, check_distinct_inputs, dir_inputs

sys.path.insert(0, str(Path(__file__).parent))
from test_s12r1_duplicate_inputs import T, prep, write_inputs  # noqa: E402


def test_a_run_that_drew_from_a_pair_before_the_rule_resumes_exactly_with_a_warning(tmp_path, monkeypatch, caplog):
    write_inputs(tmp_path / "raw", ["a.jsonl", "b.jsonl", "c.jsonl"])
    a = prep(tmp_path / "raw", tmp_path / "A", ["a.jsonl", "b.jsonl"])
    a2 = prep(tmp_path / "raw", tmp_path / "A2", ["a.jsonl", "b.jsonl"], chunk_tokens=500)
    with monkeypatch.context() as m:  # the run as an older Steel started it: the pair was let in
        m.setattr(loader, "check_distinct_inputs", lambda *a, **k: None)
        ld = PretrainLoader([a, a2], seq_len=T, micro_batch=2, seed=3)
    for _ in range(3):
        ld.next_batch()
    state = ld.state_dict()
    want = [(ld.next_batch(), ld.last_ids.copy()) for _ in range(4)]
    # a fresh start with the pair is refused
    with pytest.raises(DataError, match="same input files"):
        PretrainLoader([a, a2], seq_len=T, micro_batch=2, seed=3)
    # the resume goes on as the run began: the same batches as without the stop, and a warning naming both dirs
    with caplog.at_level(logging.WARNING, logger="steel"):
        r = PretrainLoader([a, a2], seq_len=T, micro_batch=2, seed=3, resume=True)
        r.load_state_dict(state)
    said = [x.getMessage() for x in caplog.records if "same input files" in x.getMessage()]
    assert len(said) == 1 and str(a) in said[0] and str(a2) in said[0] and "twice per epoch" in said[0]
    for batch, ids in want:
        got = r.next_batch()
        assert np.array_equal(r.last_ids, ids)
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(got, batch, strict=True))
    # a third copy new to the run is still refused at the resume
    a3 = prep(tmp_path / "raw", tmp_path / "A3", ["a.jsonl", "b.jsonl"], chunk_tokens=700)
    r = PretrainLoader([a, a2, a3], seq_len=T, micro_batch=2, seed=3, resume=True)
    with pytest.raises(DataError, match="same input files") as e:
        r.load_state_dict(state)
    assert str(a3) in str(e.value)


def synthetic(d: Path, i: int, files: list[str], digest: str | None = None):
    m = {"inputs": {"digest": digest or f"{i:064x}", "root": "/data/raw",
                    "files": {"web": [[f, 1000 + k] for k, f in enumerate(files)]}},
         "sources": {"web": {"files": files}}}
    return dir_inputs(d, m, [f"{i}-chunk"])


def test_only_dirs_naming_a_common_file_are_compared(tmp_path, monkeypatch):
    n = 300
    dirs = [synthetic(tmp_path / f"d{i}", i, [f"crawl/{i:04d}/part-{j}.jsonl" for j in range(20)]) for i in range(n)]
    calls = []
    real = loader.shared_inputs
    monkeypatch.setattr(loader, "shared_inputs", lambda a, b: calls.append((a.dir, b.dir)) or real(a, b))
    check_distinct_inputs(dirs, [])
    assert calls == []  # was n * (n - 1) / 2 = 44,850 comparisons of 20 files each
    # appending against them: no comparison either
    check_distinct_inputs([synthetic(tmp_path / "new", n, ["crawl/new/part-0.jsonl"])], dirs)
    assert calls == []
    # a re-prepare of dir 7's files (another digest, the same absolute paths and sizes) is compared with it
    # alone, and refused naming it and the file; shards of one prepare (one digest, disjoint files) are not
    again = synthetic(tmp_path / "again", n + 1, [f"crawl/0007/part-{j}.jsonl" for j in range(20)])
    with pytest.raises(DataError) as e:
        check_distinct_inputs([again], dirs)
    assert calls == [(tmp_path / "again", tmp_path / "d7")]
    assert f"data dir {tmp_path / 'again'} and data dir {tmp_path / 'd7'} (already in the run)" in str(e.value)
    assert "/data/raw/crawl/0007/part-0.jsonl" in str(e.value)
    shards = [synthetic(tmp_path / f"s{k}", 0, [f"x/{k}.jsonl"], digest="e" * 64) for k in range(50)]
    calls.clear()
    check_distinct_inputs(shards, [])
    assert calls == []


def test_a_dir_left_out_at_a_resume_is_named_missing_not_another_dirs_chunk_changed(tmp_path):
    # every dir names its chunks web-00000.bin...: the registered chunk of the dir left out was blamed on the other
    # dir's file of that name ("changed since it was registered ... restore it or start a new run")
    write_inputs(tmp_path / "raw", ["a.jsonl", "b.jsonl"])
    a = prep(tmp_path / "raw", tmp_path / "A", ["a.jsonl"])
    b = prep(tmp_path / "raw", tmp_path / "B", ["b.jsonl"])
    ld = PretrainLoader([a, b], seq_len=T, micro_batch=2, seed=3)
    ld.next_batch()
    state = ld.state_dict()
    r = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3, resume=True)
    with pytest.raises(DataError) as e:
        r.load_state_dict(state)
    assert str(e.value).startswith(f"chunk {b / 'web-00000.bin'} (MD5 ")
    assert "in none of the data dirs" in str(e.value) and "changed" not in str(e.value)
    # a chunk of a listed dir prepared again in place (other chunks under the same names) is still named so
    shutil.rmtree(b)
    prep(tmp_path / "raw", b, ["b.jsonl"], chunk_tokens=500)
    r = PretrainLoader([a, b], seq_len=T, micro_batch=2, seed=3, resume=True)
    with pytest.raises(DataError, match=f"^{b / 'web-00000.bin'}: chunk changed since it was registered"):
        r.load_state_dict(state)


def test_a_resume_after_annealing_on_a_re_prepared_copy_in_mode_replace_says_nothing(tmp_path, caplog):
    write_inputs(tmp_path / "raw", ["a.jsonl", "b.jsonl"])
    a = prep(tmp_path / "raw", tmp_path / "A", ["a.jsonl", "b.jsonl"])
    a2 = prep(tmp_path / "raw", tmp_path / "A2", ["a.jsonl", "b.jsonl"], chunk_tokens=500)
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    ld.next_batch()
    ld.add_data([a2], replace=True, phase="anneal")  # the annealing phase draws from A2 alone
    ld.next_batch()
    state = ld.state_dict()
    with caplog.at_level(logging.WARNING, logger="steel"):
        r = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3, resume=True)
        r.load_state_dict(state)
    assert not [x for x in caplog.records if "same input files" in x.getMessage()]
    assert r.state_dict() == state
