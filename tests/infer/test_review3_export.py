"""`steel export` into a directory that already exists (empty, or an earlier export with --overwrite) keeps
that directory: only its entries are replaced. Renaming OUT itself away (and a new directory in its place)
broke `steel export ... .` (the shell's working directory was deleted under it: `ls` showed nothing), a
mount point (a container volume: EBUSY), a directory whose parent the user cannot write to, and the
owner, permissions and ACLs of a directory made for the export."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from steel.cli import main as steel_main
from steel.infer import export as E


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_export_into_the_working_directory(tmp_path, tiny_llama_dir, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    monkeypatch.chdir(out)
    assert steel_main(["export", str(tiny_llama_dir), "."]) == 0
    assert "config.json" in os.listdir(".")  # the shell's directory, not a deleted one
    assert _names(Path(".")) == _names(out)


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_existing_output_directory_stays_the_same_directory(tmp_path, tiny_llama_dir, overwrite):
    out = tmp_path / "o"
    if overwrite:
        assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
        (out / "stale.json").write_text("{}")  # an earlier export's file this one does not write
    else:
        out.mkdir()
    out.chmod(0o2770)  # made for the export: its mode (and owner, ACLs, a mount) must stay
    ino = out.stat().st_ino
    E.export(tiny_llama_dir, out, overwrite=overwrite)
    assert out.stat().st_ino == ino and out.stat().st_mode & 0o7777 == 0o2770
    assert "config.json" in _names(out) and "stale.json" not in _names(out)
    assert not [n for n in _names(out) if n.startswith(".")]  # no staging left inside
    assert _names(tmp_path) == ["o"]  # nor beside it


def test_failed_export_into_an_existing_directory_leaves_it_as_it_was(tmp_path, tiny_llama_dir, monkeypatch):
    out = tmp_path / "o"
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
    before = {n: (out / n).read_bytes() for n in _names(out)}
    real = os.rename
    calls = []

    def rename(a, b):  # Ctrl-C in the middle of moving the new files in
        calls.append(b)
        if len(calls) == len(before) + 2:
            raise KeyboardInterrupt
        return real(a, b)

    monkeypatch.setattr(E.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        E.export(tiny_llama_dir, out, overwrite=True)
    monkeypatch.undo()
    assert {n: (out / n).read_bytes() for n in _names(out)} == before


def test_a_killed_export_s_staging_does_not_block_the_next(tmp_path, tiny_llama_dir):
    out = tmp_path / "o"
    out.mkdir()
    (out / ".steel-export-12345").mkdir()  # what a SIGKILL during the write leaves
    (out / ".steel-export-12345" / "model.safetensors").write_bytes(b"partial")
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
    assert "config.json" in _names(out) and not [n for n in _names(out) if n.startswith(".")]
