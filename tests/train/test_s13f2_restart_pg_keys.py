"""A torchrun restart (`--max-restarts`) does not join the failed attempt's process group.

torchrun's agent hosts the rendezvous store and keeps it across a worker restart; `init_distributed` gave the
process group the prefix `default_pg`, the same in every attempt, so the gloo (or NCCL) keys an attempt that
failed after its process group existed were still there when the restarted workers joined: a restarted rank
that reached the backend first read its peer's old address and died in "Gloo connectFullMesh failed ...
Connection refused", so the restart torchrun was given failed too. Two ranks on CPU (gloo); rank 1 of each
restarted attempt starts its backend a few seconds late, as a slower node does.

NOTE: gloo makes one rank of a pair connect to the other, by comparing their addresses (the ports are random):
the old keys broke about half the restarts, so three restarts are run (all succeed, or the old code's keys
break one of them in about 9 runs out of 10).
"""

from __future__ import annotations

import textwrap

from train_fixtures import torchrun_restarts

PER_RANK = textwrap.dedent("""
    import os, sys, time
    import torch
    import torch.distributed as dist
    from steel.train.config import ParallelSection
    from steel.train.distributed import init_distributed
    r, attempt = int(os.environ["RANK"]), int(os.environ["TORCHELASTIC_RESTART_COUNT"])
    if attempt > 0 and r == 1:  # rank 0 reaches the backend first and reads whatever address keys are there
        real = dist.init_process_group
        def late(*args, **kwargs):
            time.sleep(2)
            return real(*args, **kwargs)
        dist.init_process_group = late
    init_distributed(ParallelSection(mode="ddp", timeout_minutes=1))
    t = torch.tensor([float(r + 1)])
    dist.all_reduce(t)
    print(f"attempt {attempt} rank {r} sum {t.item()}", file=sys.stderr, flush=True)
    if attempt < 3:  # the attempt fails after its process group existed: its keys stay in the agent's store
        time.sleep(1)
        os._exit(1)
    dist.destroy_process_group()
""")


def test_a_restarted_attempt_does_not_join_the_failed_attempts_process_group(tmp_path):
    r = torchrun_restarts(PER_RANK, tmp_path, 3)
    for attempt in range(4):
        for rank in range(2):
            assert f"attempt {attempt} rank {rank} sum 3.0" in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stderr[-3000:]
