"""Every rank builds its own loader from its own scan of the data dirs; the global order is only the same
on every rank if they all see the same data. Node-local copies of the data (a usual way to feed 8 GPUs per
node) out of sync, or a data dir that changes while the ranks start, gave ranks different registries:
each rank then took its interleaved share of a *different* global order (samples read twice or never)
and the run went on without a word. The run must stop, on every rank, naming what differs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from train_fixtures import launch, make_data_dir, tiny_config

# rank r trains on the data dir given as argument r + 2 (node-local copies, each at its own path)
PER_RANK = """
import os, sys
from steel.cli import main
r = int(os.environ["LOCAL_RANK"])
sys.exit(main(["train", sys.argv[1], "--set", f"data.dirs=[{sys.argv[2 + r]}]", *sys.argv[4:]]))
"""


def torchrun_per_rank(tmp_path, cfg, dirs, *overrides) -> subprocess.CompletedProcess:
    script = tmp_path / "per_rank.py"
    script.write_text(PER_RANK)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(cfg), *map(str, dirs), *overrides]
    return launch(cmd, env=env, timeout=300)


def test_ranks_seeing_different_data_stop_the_run(tmp_path):
    node0 = make_data_dir(tmp_path / "node0" / "data", [3000, 2000], seed=4)
    node1 = tmp_path / "node1" / "data"
    shutil.copytree(node0, node1)
    cfg = tiny_config(tmp_path, [node0], max_steps=2, micro_batch=2, parallel={"mode": "ddp"},
                      checkpoint={"every": 2, "keep": 5})
    # The same data at two paths (copies on each node) is the same data: chunks are identified by MD5.
    r = torchrun_per_rank(tmp_path, cfg, [node0, node1])
    assert r.returncode == 0, r.stderr[-3000:]
    # Node 1's copy has new data (a prepare rerun synced to one node only): at the resume rank 1 appends a
    # chunk that rank 0 does not know.
    make_data_dir(node1, [3000, 2000, 1500], seed=4)
    r = torchrun_per_rank(tmp_path, cfg, [node0, node1], "--set", "max_steps=4")
    assert r.returncode != 0
    assert "the ranks see different data" in r.stderr, r.stderr[-3000:]
    assert "rank 0: 2 chunks" in r.stderr and "rank 1: 3 chunks" in r.stderr, r.stderr[-3000:]
    assert not (tmp_path / "run" / "checkpoints" / "step-4").exists()
