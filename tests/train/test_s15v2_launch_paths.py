"""`train_fixtures.Launch` leaves no process and no TMPDIR of its own behind on the paths that do not reach
`wait()`'s end: a command of several that cannot start, and an error (Ctrl-C) between the start and `wait()`
(a test that polls a launch before killing a node, as test_s15e_two_nodes does). Review V2 of session 15."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from train_fixtures import Launch

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def _running_with(value: str) -> list[int]:
    """Pids of the live processes whose environment holds S15V2_PROBE=`value` (a zombie's reads empty)."""
    key, found = f"S15V2_PROBE={value}".encode(), []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if key in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            pass
    return found


def _gone(value: str) -> bool:
    for _ in range(50):  # SIGKILLed: gone, or a zombie, within moments
        if not _running_with(value):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """(env with a probe variable, the probe's value); the launches' TMPDIRs are made under tmp_path/tmp."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    value = uuid.uuid4().hex
    return {**os.environ, "S15V2_PROBE": value}, value


def test_a_command_that_cannot_start_leaves_neither_the_others_nor_the_tmpdir(tmp_path, probe):
    env, value = probe
    with pytest.raises(FileNotFoundError):
        Launch([SLEEP, [str(tmp_path / "no-such-launcher")]], env=env, timeout=30)
    assert _gone(value)
    # NOTE: the first command was killed, but the launch's TMPDIR stayed (only wait() removed it)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_error_between_the_start_and_wait_ends_the_launch(tmp_path, probe):
    env, value = probe
    # NOTE: a Launch had no way to be ended but wait(): Ctrl-C while a test polled it (test_s15e_two_nodes waits
    # for a rank's mark before killing its node) left both nodes running (node 1's rank sleeping 600 s, node 0's
    # until gloo's timeout) and the TMPDIR in place.
    with pytest.raises(KeyboardInterrupt), Launch([SLEEP, SLEEP], env=env, timeout=30) as run:
        assert len(_running_with(value)) == 2
        raise KeyboardInterrupt
    assert [p.returncode for p in run.procs] == [-9, -9]
    assert _gone(value)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_launch_waited_in_its_with_block_returns_as_wait_does(tmp_path, probe):
    env, value = probe
    with Launch([[sys.executable, "-c", "print('hi')"]], env=env, timeout=30) as run:
        (r,) = run.wait()
    assert (r.returncode, r.stdout) == (0, "hi\n")
    assert list((tmp_path / "tmp").iterdir()) == []

