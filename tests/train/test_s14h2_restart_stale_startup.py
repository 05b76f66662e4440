"""A torchrun restart does not take the startup notes of an attempt that died during the exchange.

torchrun's agent keeps its store across a worker restart (`--max-restarts`). An attempt whose rank 1 died before
it had written or read the startup notes (a crash before the process group starts) left rank 0's note, with the
start name it made up, in that store (the notes were deleted only once every rank had read them). A restarted
rank 1 that reached the exchange before the restarted rank 0 read that stale note as its peer's: it took the old
start name and the restarted rank 0 a new one, so the two waited for each other in init_process_group under two
store prefixes until parallel.timeout_minutes, and the restart failed. Two ranks on CPU (gloo).
"""

from __future__ import annotations

import textwrap

from train_fixtures import torchrun_restarts

PER_RANK = textwrap.dedent("""
    import datetime, os, sys, time
    import torch
    import torch.distributed as dist
    from steel.train.config import ParallelSection
    from steel.train.distributed import init_distributed
    r, attempt = int(os.environ["RANK"]), int(os.environ["TORCHELASTIC_RESTART_COUNT"])
    if attempt == 0 and r == 1:
        # crash before the exchange, once rank 0 has written to it (its note is then in the agent's store)
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                              timeout=datetime.timedelta(seconds=60))
        deadline = time.monotonic() + 20  # (an exchange where rank 0 writes nothing before the others come)
        while not any(k.startswith("steel/startup") for k in store.list_keys()) and time.monotonic() < deadline:
            time.sleep(0.05)
        os._exit(1)
    if attempt == 1 and r == 0:
        time.sleep(3)  # the restarted rank 1 reaches the exchange first
    init_distributed(ParallelSection(mode="ddp", timeout_minutes=float(sys.argv[1])))
    t = torch.tensor([float(r + 1)])
    dist.all_reduce(t)
    print(f"attempt {attempt} rank {r} sum {t.item()}", file=sys.stderr, flush=True)
    dist.destroy_process_group()
""")


def test_a_restart_after_a_crash_during_the_exchange_does_not_take_its_stale_notes(tmp_path):
    # timeout 0.5 minutes: before the fix attempt 1 waited that long in init_process_group, then failed
    r = torchrun_restarts(PER_RANK, tmp_path, 1, "0.5")
    for rank in range(2):
        assert f"attempt 1 rank {rank} sum 3.0" in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stderr[-3000:]
