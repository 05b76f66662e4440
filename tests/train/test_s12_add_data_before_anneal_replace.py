"""`--add-data` at a resume while an annealing switch of mode replace is still ahead: the appended samples join
the rest of this epoch, which the switch drops, so the resume that appends says so at once (before, only the
switch did, too late for that run). A dir that is also in anneal.dirs, or an append after the switch, is not
warned about here."""

from __future__ import annotations

from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel

WARNING = "merged into the rest of this epoch; the annealing switch at step 6 (anneal.mode replace)"


def test_add_data_before_a_replace_switch_is_warned_at_the_append(tmp_path, capsys):
    data = make_data_dir(tmp_path / "data", [3000, 2000], seed=1)
    hq = make_data_dir(tmp_path / "hq", [1500], seed=7, source="hq", prefix="hq")
    more = make_data_dir(tmp_path / "more", [2000], seed=9, prefix="more")
    cfg = tiny_config(tmp_path, [data], max_steps=8, anneal={"step": 6, "dirs": [str(hq)], "mode": "replace"})
    assert steel(["train", str(cfg), "--set", "max_steps=4"]) == 0
    capsys.readouterr()
    assert steel(["train", str(cfg), "--set", "max_steps=5", "--add-data", str(more)]) == 0
    err = capsys.readouterr().err
    assert f"--add-data {more}: {WARNING}" in err
    # passed again (nothing new appended): no second warning; after the switch the loader's own warning speaks
    assert steel(["train", str(cfg), "--set", "max_steps=6", "--add-data", str(more)]) == 0
    assert WARNING not in capsys.readouterr().err


def test_a_dir_that_is_also_annealed_on_is_not_warned_about(tmp_path, capsys):
    data = make_data_dir(tmp_path / "data", [3000, 2000], seed=1)
    hq = make_data_dir(tmp_path / "hq", [1500], seed=7, source="hq", prefix="hq")
    cfg = tiny_config(tmp_path, [data], max_steps=8, anneal={"step": 6, "dirs": [str(hq)], "mode": "replace"})
    assert steel(["train", str(cfg), "--set", "max_steps=4"]) == 0
    capsys.readouterr()
    assert steel(["train", str(cfg), "--set", "max_steps=5", "--add-data", str(hq)]) == 0
    assert WARNING not in capsys.readouterr().err
