"""torchrun_two's timeout fails the test with the ranks' output so far and every rank's Python stack, and
leaves no rank running.

It used subprocess.run's timeout: torchrun alone was killed (its ranks ran on, orphaned, until gloo's timeout) and
the TimeoutExpired it raised showed none of the output, so the one hang of test_s12h1_batch_read_rank_error in a
CI run told nothing of where either rank was. Two ranks that print a line and then sleep past a short timeout.
"""

from __future__ import annotations

import contextlib
import os
import textwrap
import time

import pytest
from train_fixtures import torchrun_two

PER_RANK = textwrap.dedent("""
    import os, sys, time
    def wait_for_ever():
        time.sleep(3600)
    sys.stderr.write(f"rank {os.environ['RANK']} pid {os.getpid()} up\\n")  # one write: torchrun runs python -u
    wait_for_ever()
""")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="finds the ranks through /proc (Linux)")
def test_timeout_shows_each_rank_output_and_stack_and_kills_the_ranks(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(AssertionError) as e:
        torchrun_two(PER_RANK, tmp_path, timeout=30)
    assert time.monotonic() - t0 < 60  # the pipes closed: not left waiting on an orphaned rank
    text = str(e.value)
    assert text.startswith("torchrun did not end in 30 s"), text
    pids = []
    for r in (0, 1):
        line = next(x for x in text.splitlines() if x.startswith(f"rank {r} pid "))
        pids.append(int(line.split()[3]))
    # faulthandler's dump of each rank: its main thread in wait_for_ever, called from the script's last line
    assert text.count("in wait_for_ever") == 2 and text.count("per_rank.py\", line 7 in <module>") == 2, text
    for pid in pids:  # killed with torchrun, not orphaned (at most a zombie until init reaps it)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):  # reaped meanwhile
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            time.sleep(0.1)
        else:
            assert not os.path.exists(f"/proc/{pid}"), f"rank pid {pid} still running"
