"""Data appended with `--add-data` before an annealing switch of mode `replace`.

It is merged into the pretraining phase's rest of the epoch; the switch drops that rest, so the appended
samples not drawn yet were left out silently, and `--add-data` of the same dir after the switch did nothing
(its chunks are registered), silently too. Now the switch warns, naming each appended dir and how many of
its samples it leaves out, and a later `--add-data` of such a dir warns that it stays out of the annealing
data. Re-passing stays harmless: nothing changes (a dir appended after the switch is no-op, as before), and
the run resumes exactly.
"""

from __future__ import annotations

import numpy as np
from train_fixtures import make_data_dir

from steel.data.loader import PretrainLoader, num_windows

T = 16


def _dirs(tmp_path):
    a = make_data_dir(tmp_path / "a", [900, 700], seed=1)
    b = make_data_dir(tmp_path / "b", [600, 500], seed=2, source="more", prefix="more")
    ann = make_data_dir(tmp_path / "ann", [500], seed=3, source="hq", prefix="hq")
    return a, b, ann


def _undrawn_reference(ld, lo: int, hi: int) -> int:
    """Ids in `[lo, hi)` not drawn yet this epoch, by walking every remaining position one at a time."""
    return sum(lo <= int(ld.order.ids(np.array([p]))[0]) < hi for p in range(ld.consumed, ld.order.length))


def test_switch_names_appended_data_it_leaves_out_and_readding_it_warns(tmp_path, caplog):
    a, b, ann = _dirs(tmp_path)
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=5, lookup_dirs=[ann])
    for _ in range(4):
        ld.next_batch()
    base = ld.total
    nb = ld.add_data([b])  # --add-data b at a resume, before the switch
    assert nb == num_windows(600, T) + num_windows(500, T)
    for _ in range(3):
        ld.next_batch()
    left = _undrawn_reference(ld, base, base + nb)
    assert 0 < left < nb
    with caplog.at_level("WARNING", logger="steel"):
        ld.add_data([ann], replace=True, phase="anneal")  # what the switch does
    text = caplog.text
    assert str(b.resolve()) in text and f"{left} of its {nb} samples" in text and "anneal.dirs" in text
    assert str(a) not in text.replace(str(b), "").replace(str(ann), "")  # data.dirs are not named
    caplog.clear()

    # --add-data b again after the switch: nothing changes (re-passing is harmless), and it says why.
    state = ld.state_dict()
    with caplog.at_level("WARNING", logger="steel"):
        assert ld.add_data([b]) == 0
    assert ld.state_dict() == state
    assert str(b) in caplog.text and "2 chunks" in caplog.text and "not in the annealing data" in caplog.text
    assert "anneal.dirs" in caplog.text

    # A dir appended after the switch and passed again stays a silent no-op.
    late = make_data_dir(tmp_path / "late", [400], seed=4, source="late", prefix="late")
    assert ld.add_data([late]) == num_windows(400, T)
    caplog.clear()
    state = ld.state_dict()
    with caplog.at_level("WARNING", logger="steel"):
        assert ld.add_data([late, ann]) == 0
    assert ld.state_dict() == state and caplog.text == ""

    # Exact resume after it all: the same next batches, from the switch's phase only.
    resumed = PretrainLoader([a], seq_len=T, micro_batch=2, seed=5, lookup_dirs=[ann])
    resumed.load_state_dict(state)
    assert resumed.add_data([b]) == 0 and resumed.state_dict() == state  # the resume passes --add-data b again
    for _ in range(40):
        x, y = ld.next_batch(), resumed.next_batch()
        assert np.array_equal(ld.last_ids, resumed.last_ids)
        assert (ld.last_ids >= ld.active_base).all()
        assert np.array_equal(x["input_ids"].numpy(), y["input_ids"].numpy())


def test_switch_counts_every_appended_sample_when_none_was_drawn(tmp_path, caplog):
    # Appended right before the switch: all of its samples are left out; an appended dir that the annealing
    # phase re-uses (listed in anneal.dirs too) is not named, nor a dir drawn completely.
    a, b, ann = _dirs(tmp_path)
    ld = PretrainLoader([a], seq_len=T, micro_batch=1, seed=2)
    ld.next_batch()
    nb = ld.add_data([b])
    ld.add_data([ann])  # appended too, and annealed on below
    with caplog.at_level("WARNING", logger="steel"):
        ld.add_data([ann], replace=True, phase="anneal", reuse=True)
    assert f"{b.resolve()} ({nb} of its {nb} samples" in caplog.text and str(ann.resolve()) not in caplog.text

    # Appended at several points, switched at several points (early and late in the epoch, the next epoch):
    # the count is that of an id-by-id walk of the rest of the epoch.
    na = num_windows(900, T) + num_windows(700, T)
    for when, steps in [(0, 3), (10, 20), (10, 150), (40, 60), (0, 170)]:
        ld = PretrainLoader([a], seq_len=T, micro_batch=1, seed=2)
        for _ in range(when):
            ld.next_batch()
        ld.add_data([b])
        for _ in range(steps):
            ld.next_batch()
        left = _undrawn_reference(ld, na, na + nb)
        caplog.clear()
        with caplog.at_level("WARNING", logger="steel"):
            ld.add_data([ann], replace=True, phase="anneal")
        assert (f"{left} of its {nb} samples" in caplog.text) == (left > 0), (when, steps, left)
