"""`path: ~/data` (a directory) is refused with a glob to give instead. Since `~` is the home directory (27a46a3)
the hint named the rest of the pattern alone, `data/*.jsonl`, which is read from the root, not from home."""

from __future__ import annotations

import pytest

from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig
from steel.data.sources import expand_paths


@pytest.mark.parametrize("given, hint", [("~/data", "~/data/*.jsonl"), ("~", "~/*.jsonl")])
def test_a_home_directory_is_refused_with_a_glob_from_home(tmp_path, monkeypatch, given, hint):
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    cfg = from_dict(DataConfig, {"sources": [{"name": "web", "path": [given]}]})
    with pytest.raises(ConfigError) as e:
        expand_paths(cfg.sources[0], tmp_path / "root", 0)
    full = home / "data" if given == "~/data" else home
    assert str(e.value) == (f"sources[0].path[0]: {full} is a directory; give the files, or a glob such as {hint}")
