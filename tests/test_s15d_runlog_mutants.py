"""Tests written by a mutation audit of `steel.runlog` (session 15, D): each one kills a deliberate mutation
that the rest of the suite let pass."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

import steel.runlog as runlog
from steel.runlog import progress_bar, setup_run_log


def launch_line(tmp_path, monkeypatch, world: str, local: str | None) -> str | None:
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setenv("RANK", "0")
    if local is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
    path = tmp_path / f"{world}-{local}.log"
    logger = setup_run_log(path, name="steel-test-s15d-launch")
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    lines = [x.split(" INFO ", 1)[1] for x in path.read_text().splitlines() if " INFO launch:" in x]
    return lines[0] if lines else None


@pytest.mark.parametrize("world, local, line", [
    # a last node with fewer processes still is a node: 12 processes at 8 per node run on 2 nodes
    ("12", "8", "launch: torchrun, 12 processes (8 per node, 2 nodes); this log is rank 0's"),
    ("8", "8", "launch: torchrun, 8 processes (8 per node, 1 node); this log is rank 0's"),
    # a LOCAL_WORLD_SIZE that says nothing is left out, never a ZeroDivisionError before the run starts
    ("4", "0", "launch: torchrun, 4 processes; this log is rank 0's"),
    ("4", None, "launch: torchrun, 4 processes; this log is rank 0's"),
])
def test_the_launch_line_counts_nodes_rounding_up(tmp_path, monkeypatch, world, local, line):
    assert launch_line(tmp_path, monkeypatch, world, local) == line


def test_a_second_setup_replaces_the_loggers_handlers_and_keeps_lines_out_of_the_root_logger(tmp_path, monkeypatch):
    for var in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    root_seen = io.StringIO()
    root_handler = logging.StreamHandler(root_seen)
    logging.getLogger().addHandler(root_handler)
    try:
        first = setup_run_log(tmp_path / "a.log", name="steel-test-s15d-twice")
        old = list(first.handlers)
        second = setup_run_log(tmp_path / "b.log", name="steel-test-s15d-twice")
        second.info("only in b")
        assert second is first and not any(h in second.handlers for h in old)
        assert all(h.stream is None for h in old if isinstance(h, logging.FileHandler))  # closed
        assert "only in b" not in (tmp_path / "a.log").read_text()
        assert (tmp_path / "b.log").read_text().count("only in b") == 1
        assert "only in b" not in root_seen.getvalue()  # the root logger's handlers would print it twice
    finally:
        logging.getLogger().removeHandler(root_handler)
        for h in list(logging.getLogger("steel-test-s15d-twice").handlers):
            logging.getLogger("steel-test-s15d-twice").removeHandler(h)
            h.close()


def test_steel_no_progress_turns_bars_off_on_a_terminal_too(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(runlog, "console", Console(file=out, force_terminal=True, width=80))
    monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    with progress_bar("quiet", total=3) as advance:
        advance(3)
    assert out.getvalue() == ""
    monkeypatch.delenv("STEEL_NO_PROGRESS")
    with progress_bar("shown", total=3) as advance:
        advance(3)
    assert "shown" in out.getvalue()  # the contrast: the same terminal shows a bar without it


@pytest.mark.parametrize("tracked, rev, status, want", [
    (0, "abc1234\n", "", "abc1234"),
    (0, "abc1234\n", " M src/steel/runlog.py\n", "abc1234+dirty"),
    # an installed Steel inside the user's own repository: that repository's commit is not Steel's version
    (1, "abc1234\n", "", "unknown"),
])
def test_git_revision_reads_the_checkout_that_tracks_steel(monkeypatch, tracked, rev, status, want):
    import subprocess

    def fake_git(cmd, **kw):
        out = {"ls-files": ("", tracked), "rev-parse": (rev, 0), "status": (status, 0)}[cmd[1]]
        return subprocess.CompletedProcess(cmd, out[1], stdout=out[0], stderr="")

    monkeypatch.setattr(runlog.subprocess, "run", fake_git)
    assert runlog.git_revision() == want
