"""A multi-node launch where another node never comes: `python -m steel.launch` (torchrun's arguments and
behaviour) ends with one line naming the rendezvous endpoint, the nodes it waited for, how long, and what to check.

Found in session 16: `torchrun --nnodes 2 ... -m steel.cli train` alone ended after the rendezvous timeout with
torch's 40-line traceback ending in a bare `RendezvousTimeoutError` (c10d) or `DistStoreError: Timed out after 11
seconds waiting for clients. 1/2 clients joined.` (static). The agent is torch's and fails before any rank (any
Steel code) starts: only a wrapper around it can say more. Each case runs the wrapper as a user would, one agent
alone on this machine with a short timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import _free_port, make_data_dir, tiny_config  # (same dir)

SRC = str(Path(__file__).resolve().parents[2] / "src")


def launch(args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC, STEEL_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "steel.launch", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def cfg(tmp_path) -> Path:
    return tiny_config(tmp_path, [make_data_dir(tmp_path / "data", [600, 600])], max_steps=2)


CHECK = ("no rank started. Check that every node runs the same command with the same {same}, that {where} is node "
         "0's address and its port is reachable from every node (a firewall), and that no node's launch failed (its "
         "own output says why); to wait longer, --rdzv_conf {key}=SECONDS")


def test_c10d_alone(tmp_path, cfg):
    where = f"localhost:{_free_port()}"
    r = launch(["--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d", "--rdzv_endpoint", where,
                "--rdzv_id", "lone", "--rdzv_conf", "join_timeout=3", "-m", "steel.cli", "train", str(cfg)], tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1] == (
        f"steel: error: torchrun's rendezvous at {where} (c10d, --rdzv_id lone) waited 3 s for 2 nodes and not all "
        "came (RendezvousTimeoutError); " + CHECK.format(same="--nnodes, --rdzv_endpoint and --rdzv_id", where=where,
                                                         key="join_timeout")), r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()  # no rank started


def test_static_alone(tmp_path, cfg):
    port = _free_port()
    r = launch(["--nnodes", "2", "--node_rank", "0", "--nproc_per_node", "1", "--master_addr", "localhost",
                "--master_port", str(port), "--rdzv_conf", "timeout=3", "-m", "steel.cli", "train", str(cfg)], tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    line = r.stderr.strip().splitlines()[-1]
    where = f"localhost:{port}"
    assert line.startswith(f"steel: error: torchrun's rendezvous at {where} (static, this node's --node_rank 0) "
                           "waited 3 s for 2 nodes and not all came (DistStoreError: "), line
    assert "1/2 clients joined" in line  # torch's own count of the nodes that came
    assert line.endswith(CHECK.format(same="--nnodes, --master_addr and --master_port (each node its own "
                                           "--node_rank)", where=where, key="timeout")), line
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()


def test_a_launch_that_works_or_fails_otherwise_is_torchruns(tmp_path, cfg):
    r = launch(["--standalone", "--nproc_per_node", "1", "-m", "steel.cli", "train", str(cfg)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "step-2").is_dir()
    r = launch(["--standalone", "--nproc_per_node", "1", "-m", "steel.cli", "train", str(tmp_path / "none.yaml")],
               tmp_path)
    assert r.returncode == 1 and "ChildFailedError" in r.stderr, r.stderr[-3000:]  # a rank's error: torch's report
    assert "rendezvous" not in r.stderr.strip().splitlines()[-1]


def test_other_agent_errors_are_not_told_as_a_missing_node():
    from torch.distributed import DistNetworkError, DistStoreError
    from torch.distributed.run import parse_args

    from steel.launch import rendezvous_line

    args = parse_args(["--nnodes", "2", "--master_addr", "h", "-m", "steel.cli", "train", "x"])
    assert rendezvous_line(args, DistNetworkError("The server socket has failed to listen ... EADDRINUSE")) is None
    assert rendezvous_line(args, DistStoreError("some other store error")) is None
    assert rendezvous_line(args, ValueError("x")) is None
