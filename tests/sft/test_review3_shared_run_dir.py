"""A `run_dir` that the ranks do not all see (node-local disk in a multi-node run) is refused at start.

It used to fail only at the first checkpoint, `checkpoint.every` steps in, with an error from another node's
ranks. Now rank 0 writes a token into run_dir, every rank reads it, and every rank stops with the same error
naming run_dir and the ranks and hosts that do not see it; none hangs. Two ranks under torchrun on CPU
(gloo), where rank 1 gets its own run_dir as a node-local disk would give it: `steel train` and `steel sft`,
one launch each (a refused command leaves the process group, so the rank exits cleanly: one process cannot
join a second group under torchrun's store).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sft_runs import write_sft_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from train_fixtures import make_data_dir, tiny_config  # noqa: E402

# argv: KIND CFG RUN0 RUN1: rank r runs `steel KIND CFG` with run_dir RUN<r>/KIND
PER_RANK = """
import os, sys
from steel.cli import main
r = int(os.environ["LOCAL_RANK"])
kind, run = sys.argv[1], sys.argv[3 + r]
code = main([kind, sys.argv[2], "--set", f"run_dir={run}/{kind}"])
print(f"rank {r} exit code {code}", file=sys.stderr)
sys.exit(0 if code == 2 else 1)
"""


@pytest.mark.parametrize("kind", ["train", "sft"])
def test_run_dir_not_shared_by_every_rank_is_refused_on_every_rank(tmp_path, tiny_tokenizer_dir, kind):
    if kind == "train":
        cfg = tiny_config(tmp_path, [make_data_dir(tmp_path / "data", [3000, 2000])], max_steps=2, micro_batch=2,
                          parallel={"mode": "ddp"})
    else:
        cfg = write_sft_run(tmp_path / "sft", tiny_tokenizer_dir, max_steps=2, extra="parallel: {mode: ddp}\n")
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    script = tmp_path / "per_rank.py"
    script.write_text(PER_RANK)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           kind, str(cfg), str(node0), str(node1)]
    # Before the check the ranks hung at the first checkpoint. On a timeout, SIGTERM: torchrun passes it on
    # to its workers (a SIGKILL orphaned them, and they held the pipes open).
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=240)  # a loaded 2-core machine takes ~30 s a command
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    r = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0 exit code 2" in r.stderr and "rank 1 exit code 2" in r.stderr, r.stderr[-3000:]
    assert "terminate called" not in r.stderr, r.stderr[-3000:]
    errors = [x for x in r.stderr.splitlines() if x.startswith("steel: error:")]
    # Each rank names its own run_dir (on real nodes the same path): otherwise the same line.
    mine = [x.replace(str(node1), str(node0)) for x in errors if f"/{kind} is not the same directory" in x]
    assert len(mine) == 2, errors  # rank 0 and rank 1
    assert mine[0] == mine[1] and f"run_dir: {node0}/{kind} " in mine[0] and "rank 1 (host " in mine[0], mine
    assert not list((node0 / kind).glob(".steel-shared-check*"))
    assert not (node0 / kind / "checkpoints").exists() or not any((node0 / kind / "checkpoints").iterdir())
