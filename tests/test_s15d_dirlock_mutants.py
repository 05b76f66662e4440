"""Tests written by a mutation audit of `steel.dirlock` (session 15, D): each one kills a deliberate mutation
that the rest of the suite let pass."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys

from steel.dirlock import LOCK_NAME, acquire

OTHER = "import sys; from steel.dirlock import acquire; acquire(sys.argv[1], 'steel train')"


def other_process_locks(path) -> bool:
    """Whether a second process (global rank 0) can take the lock on `path` now."""
    r = subprocess.run([sys.executable, "-c", OTHER, str(path)], capture_output=True, text=True,
                       env={**os.environ, "RANK": "0"})
    assert r.returncode == 0 or "in use by another Steel process" in r.stderr, r.stderr
    return r.returncode == 0


def test_only_global_rank_zero_locks(tmp_path, monkeypatch):
    # under torchrun rank 0 speaks for the run: a rank 1 that locked too would refuse its own rank 0
    monkeypatch.setenv("RANK", "1")
    release = acquire(tmp_path, "steel train")
    assert not (tmp_path / LOCK_NAME).exists()
    assert other_process_locks(tmp_path)
    release()


def test_the_lock_file_names_only_the_current_holder(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    # a holder killed with -9 leaves its line behind (the file is not the lock)
    (tmp_path / LOCK_NAME).write_text("steel train, pid 999999 on gone-host, since 2026-01-01 00:00:00\n")
    release = acquire(tmp_path, "steel sft")
    lines = (tmp_path / LOCK_NAME).read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"steel sft, pid {os.getpid()} on "), lines
    release()


def test_reentrant_whatever_the_spelling_of_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    run = tmp_path / "run"
    a = acquire(run, "steel train")
    monkeypatch.chdir(tmp_path)
    b = acquire("run", "steel train")  # the same directory, relative: this process already holds it
    c = acquire(tmp_path / "x" / ".." / "run", "steel train")
    a()
    b()
    assert not other_process_locks(run)  # c still holds it
    c()
    assert other_process_locks(run)


def test_a_file_system_without_flock_goes_on_unlocked_with_a_warning(tmp_path, monkeypatch, caplog):
    import fcntl

    def no_flock(f, how):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(fcntl, "flock", no_flock)
    with caplog.at_level(logging.WARNING, logger="steel"):
        release = acquire(tmp_path / "nfs", "steel train")
    release()
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'nfs'}: cannot lock {LOCK_NAME} (No locks available); going on without protection against "
        "a second steel train process"
    ]
