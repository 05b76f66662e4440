"""`train_fixtures.launch` leaves nothing behind: no rank of a torchrun agent killed from outside, no directory of
torchrun's in the machine's temporary directory."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

from train_fixtures import launch

# Rank 0 kills its torchrun agent (from outside the agent, as an OOM killer or an operator would); both ranks
# then wait, each in a session of its own (torchrun's), their parent gone.
ORPHANS = """
import os, signal, sys, time
# one write of the whole line: under torchrun (`python -u`) print's text and its newline are two writes, and the
# two ranks' lines interleaved ("...error.jsonrank 1 pid ...")
os.write(2, f"rank {os.environ['RANK']} pid {os.getpid()} log {os.environ['TORCHELASTIC_ERROR_FILE']}\\n".encode())
if os.environ["RANK"] == "0":
    time.sleep(1)
    os.kill(os.getppid(), signal.SIGKILL)
time.sleep(float(sys.argv[1]))
"""


def _ended(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_launch_kills_the_ranks_of_an_agent_killed_from_outside_and_removes_torchruns_dir(tmp_path):
    script = tmp_path / "orphans.py"
    script.write_text(ORPHANS)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), "45"]
    t0 = time.monotonic()
    # NOTE: the ranks held the launch's pipes: launch waited until its timeout, found no rank under the dead
    # agent, and then waited for the pipes until the ranks' own end (45 s).
    r = launch(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=40)
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    assert time.monotonic() - t0 < 30
    ranks = re.findall(r"rank [01] pid (\d+) log (\S+)", r.stderr)
    assert len(ranks) == 2, r.stderr[-3000:]
    for pid, _ in ranks:
        for _ in range(50):  # reaped by now, or a zombie for a moment
            if _ended(int(pid)):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"rank pid {pid} still running")
    # torchrun's log dir (`torchelastic_*` under TMPDIR, which the agent never removes): gone with the launch
    # (hundreds were left in /tmp by the suite)
    logs = {Path(log).parents[3] for _, log in ranks}
    assert len(logs) == 1 and next(iter(logs)).name.startswith("torchelastic_"), logs
    assert not next(iter(logs)).exists()
