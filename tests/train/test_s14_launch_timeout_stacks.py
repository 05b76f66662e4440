"""`train_fixtures.launch`, used by the torchrun tests that launch `steel` themselves: on a timeout it fails
with the launch's output so far and every rank's Python stack (faulthandler on SIGABRT, torchrun's agent
stopped first so that it cannot end the other ranks without theirs), and leaves no process running.
subprocess.run's timeout killed torchrun alone and showed no output (the one CI hang told nothing)."""

from __future__ import annotations

import os
import re
import sys
import time

import pytest
from train_fixtures import launch

SCRIPT = """
import os, sys, time
print(f"rank {os.environ['RANK']} pid {os.getpid()} waiting", file=sys.stderr, flush=True)
def wait_here():
    time.sleep(600)
wait_here()
"""


def test_launch_timeout_shows_every_ranks_stack_and_leaves_nothing(tmp_path):
    script = tmp_path / "wait.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    t0 = time.monotonic()
    with pytest.raises(AssertionError) as e:
        launch(cmd, env=env, timeout=20)
    assert time.monotonic() - t0 < 60  # the pipes closed: no rank left holding them
    text = str(e.value)
    assert text.startswith("torchrun did not end in 20 s"), text[:500]
    pids = [int(x) for x in re.findall(r"rank [01] pid (\d+) waiting", text)]
    assert len(pids) == 2, text
    assert text.count("in wait_here") == 2, text  # each rank's own stack
    for pid in pids:
        for _ in range(50):  # reaped by now, or a zombie for a moment
            if not os.path.exists(f"/proc/{pid}") or " Z " in open(f"/proc/{pid}/stat").read():
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"rank pid {pid} still running")
