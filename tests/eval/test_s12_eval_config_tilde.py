"""`steel eval --config FILE` with `data: ~...`: `~/d` is the home directory, and `~name` where no user is
so named is that name, as a shell (and `steel data prepare`'s paths) take it, not a RuntimeError."""

from __future__ import annotations

from pathlib import Path

from steel.eval.cli import options
from steel.eval.ppl import PplOptions


def _config(tmp_path: Path, data: str) -> str:
    cfg = tmp_path / "cfg" / "ppl.yaml"
    cfg.parent.mkdir()
    cfg.write_text(f"data: {data}\nseq_len: 16\n", encoding="utf-8")
    return str(cfg)


def test_home_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert options(PplOptions, _config(tmp_path, "~/d"), {}).data == tmp_path / "home" / "d"


def test_tilde_name_without_such_user_is_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got = options(PplOptions, _config(tmp_path, "~no_such_user_s12/d"), {}).data
    assert got == tmp_path / "cfg" / "~no_such_user_s12" / "d"  # relative: from the config's directory
