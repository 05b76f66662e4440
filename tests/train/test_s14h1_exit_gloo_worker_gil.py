"""A rank leaves its process group at its exit without hanging when gloo's worker thread finishes the rank's
last collective late (after the rank went on to its exit), in a DDP run that ends done or stopped by a rank
whose batches cannot be read.

The collector frees DDP's reducer holding the GIL (pybind frees it without letting go), and the reducer could
hold the last reference to the process group: gloo's destructor then waited for its worker thread while that
thread, dropping its last collective's tensors (their Python objects gone first), waited for the GIL. The rank
hung at its exit until the test's 240 s timeout (test_s12h1_batch_read_rank_error: once in a CI run; 1 in 45
runs of it on a loaded machine, each time in free_process_groups' gc.collect). A worker descheduled on a loaded
machine is late by chance; here rank 1 joins rank 0's last collective 3 s late, which rank 0 does not wait for.
Two ranks on CPU (gloo).
"""

from __future__ import annotations

import textwrap

import pytest
from train_fixtures import make_data_dir, rank_errors, tiny_config, torchrun_two

# argv: CFG NODE1_DATA CASE: rank 1 reads NODE1_DATA, whose chunk files are deleted once startup is over when CASE
# is "unread"
PER_RANK = textwrap.dedent("""
    import os, pathlib, sys, time
    import torch
    import torch.distributed as dist
    from steel.cli import main
    from steel.train import trainer
    r = int(os.environ["RANK"])
    train = trainer.Trainer.train
    def train_then_late_collective(self):
        if r == 1 and sys.argv[3] == "unread":
            for p in pathlib.Path(sys.argv[2]).glob("*.bin"):
                p.unlink()
        try:
            return train(self)
        finally:
            if r == 1:
                time.sleep(3)
                dist.all_reduce(torch.ones(1))
            else:  # not waited for: gloo's worker thread holds the only reference to the tensor
                dist.all_reduce(torch.ones(1), async_op=True)
    trainer.Trainer.train = train_then_late_collective
    code = main(["train", sys.argv[1], *(["--set", f"data.dirs=[{sys.argv[2]}]"] if r == 1 else [])])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code in (0, 2) else 1)
""")


@pytest.mark.parametrize("case", ["done", "unread"])
def test_rank_exits_while_gloo_worker_finishes_its_last_collective(tmp_path, case):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    node1 = make_data_dir(tmp_path / "node1" / "data", [3000, 2000])  # rank 1's copy; rank 0 reads `data`
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp"},
                      checkpoint={"every": 100})
    r = torchrun_two(PER_RANK, tmp_path, cfg, node1, case, timeout=120)
    if case == "done":
        assert r.returncode == 0, r.stderr[-3000:]
        assert "rank 0 exit code 0" in r.stderr and "rank 1 exit code 0" in r.stderr, r.stderr[-3000:]
    else:
        errors = rank_errors(r, 2)
        assert len(errors) == 2 and "rank 1 stopped while reading step 1's batches: " in errors[1], errors
