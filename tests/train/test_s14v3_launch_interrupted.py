"""`train_fixtures.launch` interrupted (Ctrl-C, a pytest timeout) while the ranks print their stacks after a
timeout: the torchrun agent it stopped (SIGSTOP) and the ranks not yet aborted are killed too. The stack phase
lay outside the try whose `except BaseException` kills the tree, so an interrupt there left torchrun stopped
for good and a rank running (until its own end, holding the test session's pipes)."""

from __future__ import annotations

import os
import sys
import time

import pytest
import train_fixtures
from train_fixtures import launch

SCRIPT = """
import time
time.sleep(600)
"""


def _running(pid: int) -> bool:
    """pid still there after up to 5 s (a zombie counts as ended)."""
    for _ in range(50):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False
        except FileNotFoundError:
            return False
        time.sleep(0.1)
    return True


def test_interrupt_while_ranks_dump_stacks_leaves_no_process(tmp_path, monkeypatch):
    script = tmp_path / "wait.py"
    script.write_text(SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    tree, pauses = [], []
    find = train_fixtures._tree

    def interrupted(seconds):  # Ctrl-C in the pause after the first rank's SIGABRT
        pauses.append(seconds)
        raise KeyboardInterrupt

    def tree_then_interrupt(p):  # launch's timeout path: the tree it stops and aborts
        found = find(p)
        if not tree:
            tree.extend(found)
            monkeypatch.setattr(train_fixtures.time, "sleep", interrupted)
        return found

    monkeypatch.setattr(train_fixtures, "_tree", tree_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        launch(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=20)
    monkeypatch.undo()
    assert pauses == [2] and len(tree) >= 3, (pauses, tree)  # torchrun and its 2 ranks, interrupted in between
    left = [pid for pid in tree if _running(pid)]
    for pid in left:  # the test's own cleanup on the old code (SIGCONT is not needed for SIGKILL)
        os.kill(pid, 9)
    assert not left, f"left running or stopped: {left} of {tree} (torchrun first)"
