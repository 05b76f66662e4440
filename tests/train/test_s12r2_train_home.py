"""`~` in `steel train`'s config paths (data.dirs, anneal.dirs, run_dir, model.config), in its `--set` values and
in its and `steel plot`'s path arguments (CONFIG, `--add-data`, RUN_DIR, `--out`) is the home directory, as in
`steel data prepare`: it was taken literally, so `data.dirs: [~/data]` was "~/data/manifest.json: cannot read
manifest", `run_dir: ~/runs/a` or `--add-data=~/d` (which a shell leaves as it is) named ./~/..., and
`steel train "~/train.yaml"` could not read its config."""

from __future__ import annotations

import json
from pathlib import Path

from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel
from steel.config import from_dict, load_config
from steel.train.config import TrainConfig


def test_config_path_fields_expand_home(tmp_path, monkeypatch, home):
    cfg = from_dict(TrainConfig, {"run_dir": "~/runs/a", "model": {"config": "~/models/m.yaml"},
                                  "data": {"dirs": ["~/data/web", "rel/books", str(tmp_path / "abs")]},
                                  "anneal": {"step": 5, "dirs": ["~/data/hq"]}})
    assert cfg.run_dir == f"{home}/runs/a" and cfg.model.config == f"{home}/models/m.yaml"
    assert cfg.data.dirs == [f"{home}/data/web", "rel/books", str(tmp_path / "abs")]  # others as they were
    assert cfg.anneal.dirs == [f"{home}/data/hq"]
    assert from_dict(TrainConfig, {"model": {"config": "tiny"}}).model.config == "tiny"  # a preset name
    # `--set` values (parsed as YAML) go the same way
    (tmp_path / "t.yaml").write_text("data: {dirs: [a]}\n", encoding="utf-8")
    cfg = load_config(TrainConfig, tmp_path / "t.yaml", ["run_dir=~/r", "data.dirs=[~/d1, ~/d2]", "anneal.dirs=[~/h]"])
    assert (cfg.run_dir, cfg.data.dirs, cfg.anneal.dirs) == (f"{home}/r", [f"{home}/d1", f"{home}/d2"], [f"{home}/h"])


def _state(run: Path, step: int) -> dict:
    return json.loads((run / "checkpoints" / f"step-{step}" / "data.json").read_text())


def test_train_resume_add_data_and_plot_with_home_paths(tmp_path, monkeypatch, home):
    make_data_dir(home / "data", [3000, 2000, 2500])
    more = make_data_dir(home / "more", [2000], seed=9, prefix="more")
    tiny_config(home, ["~/data"], max_steps=2, run_dir="~/run")  # -> home/train.yaml
    run = home / "run"
    assert steel(["train", "~/train.yaml"]) == 0  # a quoted "~/train.yaml"
    assert _state(run, 2)["consumed"] == 2 * 4 * 2
    # appended at a resume as `--add-data=~/more`: remembered expanded and absolute
    assert steel(["train", "~/train.yaml", "--set", "max_steps=3", "--add-data=~/more"]) == 0
    state = _state(run, 3)
    assert state["extra_dirs"] == [str(more)] and len(state["chunks"]) == 4 and len(state["segments"]) == 2
    # the same dir given again in another spelling (absolute, then with `~` again) appends nothing
    assert steel(["train", "~/train.yaml", "--set", "max_steps=4", "--add-data", str(more)]) == 0
    assert steel(["train", "~/train.yaml", "--set", "max_steps=5", "--add-data", "~/more/"]) == 0
    state = _state(run, 5)
    assert state["extra_dirs"] == [str(more)] and len(state["chunks"]) == 4 and len(state["segments"]) == 2
    assert steel(["plot", "~/run", "--out=~/plots/curves.png"]) == 0
    assert (home / "plots" / "curves.png").is_file()
    assert not (tmp_path / "~").exists() and not (home / "~").exists()


def test_add_data_with_home_at_the_start_then_absolute_at_a_resume(tmp_path, monkeypatch, home):
    data = make_data_dir(home / "data", [3000, 2000, 2500])
    more = make_data_dir(home / "more", [2000], seed=9, prefix="more")
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    assert steel(["train", str(cfg), "--add-data=~/more"]) == 0
    assert _state(tmp_path / "run", 2)["extra_dirs"] == [str(more)]
    assert steel(["train", str(cfg), "--set", "max_steps=3", "--add-data", str(more)]) == 0
    state = _state(tmp_path / "run", 3)
    assert state["extra_dirs"] == [str(more)] and len(state["chunks"]) == 4 and len(state["segments"]) == 1
    assert not (tmp_path / "~").exists()
