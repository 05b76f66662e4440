"""`--add-data D --add-data D` (or `D` and `D/`, relative and absolute) at a resume appends D once.

Before, the loader scanned D twice and refused its chunks as copies of themselves ("X has the same
head/tail MD5 as X (a copy of a data dir?)"), while the same dir listed twice in `data.dirs`, or given
to `--add-data` at the start, was read once.
"""

import numpy as np
from train_fixtures import make_data_dir

from steel.data.loader import PretrainLoader

T = 16


def _run_epoch_with_append(tmp_path, add):
    d1 = make_data_dir(tmp_path / "d1", [900, 700], seed=1)
    make_data_dir(tmp_path / "d2", [800], seed=2, source="books", prefix="b")
    ld = PretrainLoader([d1], seq_len=T, micro_batch=1, seed=9)
    seen = [int(ld.next_batch() and ld.last_ids[0]) for _ in range(25)]
    state = ld.state_dict()
    ld = PretrainLoader([d1], seq_len=T, micro_batch=1, seed=9)
    ld.load_state_dict(state)
    added = ld.add_data(add)
    assert len(ld.state_dict()["segments"]) == 2  # one append
    while ld.epoch == 0:
        seen.append(int(ld.next_batch() and ld.last_ids[0]))
    return ld, added, seen


def test_same_dir_twice_in_one_add_data_is_appended_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # reference: the dir given once
    ref, ref_added, ref_seen = _run_epoch_with_append(tmp_path / "a", [tmp_path / "a" / "d2"])
    assert ref_added == (800 - 1) // T
    # the same dir three ways: absolute, with a trailing slash, relative to the cwd
    b = tmp_path / "b"
    ld, added, seen = _run_epoch_with_append(b, [b / "d2", f"{b / 'd2'}/", "b/d2"])
    assert added == ref_added
    assert len(ld.chunks) == 3
    assert ld.extra_dirs == [str((b / "d2").resolve())]
    # every sample of the epoch exactly once, in the same order as the dir given once
    assert sorted(seen) == list(range(ld.total)) and np.array_equal(seen, ref_seen)
