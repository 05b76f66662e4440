"""`build_qwen_tokenizer` is atomic: an interrupted build leaves the target as it was (absent, or the
previous tokenizer), never a half directory that `steel data prepare` would take for a tokenizer."""

from __future__ import annotations

import pytest

from steel.tokenizer import qwen
from steel.tokenizer.qwen import QWEN_FILES, build_qwen_tokenizer


def interrupt_rank_copy(monkeypatch):
    """Kill the build at its last step (the rank file copy, after tokenizer.json and the config are written)."""

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(qwen.shutil, "copyfile", boom)


def test_build_writes_exactly_the_files_checked_for(tmp_path, small_ranks_file):
    out = build_qwen_tokenizer(tmp_path / "tok", ranks_path=small_ranks_file)
    assert sorted(p.name for p in out.iterdir()) == sorted(QWEN_FILES)
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]  # no temporary sibling left


def test_interrupted_build_leaves_no_directory(tmp_path, small_ranks_file, monkeypatch):
    interrupt_rank_copy(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        build_qwen_tokenizer(tmp_path / "tok", ranks_path=small_ranks_file)
    assert list(tmp_path.iterdir()) == []  # before: tok/ with tokenizer.json and no qwen.tiktoken


def test_interrupted_rebuild_keeps_the_previous_tokenizer(tmp_path, small_ranks_file, monkeypatch):
    out = build_qwen_tokenizer(tmp_path / "tok", ranks_path=small_ranks_file)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    interrupt_rank_copy(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        build_qwen_tokenizer(out, ranks_path=small_ranks_file, default_system="Be brief.")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]


def test_rebuild_into_a_directory_keeps_other_files(tmp_path, small_ranks_file):
    out = tmp_path / "tok"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "tokenizer.json").write_text("{ truncated")
    build_qwen_tokenizer(out, ranks_path=small_ranks_file)
    assert sorted(p.name for p in out.iterdir()) == sorted([*QWEN_FILES, "notes.txt"])
    assert (out / "notes.txt").read_text() == "mine" and (out / "tokenizer.json").read_text().startswith("{")
    assert (out / "qwen.tiktoken").read_bytes() == small_ranks_file.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]


def test_built_directory_has_the_permissions_of_a_plain_mkdir(tmp_path, small_ranks_file):
    """The temporary sibling comes from mkdtemp (mode 0700); renamed in as is, the tokenizer was unreadable to
    anyone but its owner (another user or container uid preparing data or training from it)."""
    import os
    import stat

    plain = tmp_path / "plain"
    plain.mkdir()  # the reference: what the umask gives any new directory
    out = build_qwen_tokenizer(tmp_path / "tok", ranks_path=small_ranks_file)
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    # A rebuild keeps the mode the directory had.
    os.chmod(out, 0o750)
    build_qwen_tokenizer(out, ranks_path=small_ranks_file, default_system="Be brief.")
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
