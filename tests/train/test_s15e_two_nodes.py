"""`steel train` as the README launches it on several nodes: one torchrun agent per node (`--nnodes 2
--nproc_per_node 1 --rdzv_backend c10d`), here two agents on this machine, gloo, `run_dir` shared and each node's
data dir a copy of its own at another path. No test had run two agents: every torchrun test used one agent
(`--standalone`) starting both ranks."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
from train_fixtures import launch, make_data_dir, tiny_config, torchrun_nodes

from steel.data.chunks import write_manifest

# argv: HOLD_AT MARK COMMAND...: runs `steel COMMAND...`; once this rank's checkpoint of step HOLD_AT is saved it
# creates MARK and waits there (for the test to kill its node).
HOLD = """
import os, sys, time
from pathlib import Path
from steel.cli import main
from steel.train import trainer
save = trainer.Trainer.save
def held(self):
    path = save(self)
    if self.state.step == int(sys.argv[1]):
        Path(sys.argv[2]).touch()
        time.sleep(600)
    return path
trainer.Trainer.save = held
sys.exit(main(sys.argv[3:]))
"""

TIMING = ("tokens_per_s", "computed_per_s", "mfu", "mem_gb")


def _metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _same_checkpoint(a: Path, b: Path) -> None:
    for name in ("model.safetensors", "optimizer.safetensors", "optimizer.json", "train_state.json", "data.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{a / name} differs from {b / name}"


@pytest.fixture
def nodes(tmp_path):
    """(config, node 0's data dir, node 1's: a copy at another path)."""
    node0 = make_data_dir(tmp_path / "node0" / "data", [3000, 2000], seed=4)
    node1 = tmp_path / "node1" / "data"
    shutil.copytree(node0, node1)
    cfg = tiny_config(tmp_path, [node0], max_steps=8, micro_batch=2, parallel={"mode": "ddp"},
                      checkpoint={"every": 4, "keep": 5})
    return cfg, node0, node1


def _train(cfg, data, *more):
    return ["-m", "steel.cli", "train", cfg, "--set", f"data.dirs=[{data}]", *more]


def test_two_nodes_train_as_one_and_resume_exactly_after_a_node_dies(tmp_path, nodes):
    cfg, node0, node1 = nodes
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    ref = tmp_path / "one-agent"
    r = launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "steel.cli", "train", str(cfg), "--set", f"run_dir={ref}"], env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]

    # Node 1 dies (its agent and its rank, killed from outside) once step 4's checkpoint is saved.
    hold, mark = tmp_path / "hold.py", tmp_path / "held"
    hold.write_text(HOLD)
    # (`with`: an error or Ctrl-C while polling ends both nodes: node 1's rank would sleep 600 s)
    with torchrun_nodes([_train(cfg, node0), [hold, 4, mark, *_train(cfg, node1)[2:]]]) as run:
        deadline = time.monotonic() + 200
        while not mark.exists() and time.monotonic() < deadline and all(p.poll() is None for p in run.procs):
            time.sleep(0.1)
        held = mark.exists()
        run.kill(1)
        first = run.wait()
    assert held, first[0].stderr[-3000:] + first[1].stderr[-3000:]
    assert first[0].returncode != 0 and first[1].returncode == -9
    out = tmp_path / "run"
    assert not (out / "checkpoints" / "step-8").exists()
    _same_checkpoint(out / "checkpoints" / "step-4", ref / "checkpoints" / "step-4")

    # Both nodes started again: the run resumes at step 4 and ends where the one-agent run did, bit for bit.
    again = torchrun_nodes([_train(cfg, node0), _train(cfg, node1)]).wait()
    assert [x.returncode for x in again] == [0, 0], again[0].stderr[-3000:] + again[1].stderr[-3000:]
    assert "resum" in again[0].stderr.lower(), again[0].stderr[-3000:]
    _same_checkpoint(out / "checkpoints" / "step-8", ref / "checkpoints" / "step-8")
    assert _metrics(out) == _metrics(ref)
    assert [x["step"] for x in _metrics(out)] == list(range(1, 9))


def test_a_node_whose_data_copy_holds_another_chunk_stops_both_naming_it(tmp_path, nodes):
    # (A node given another `--set optim.lr=` is refused as under one agent: the ranks' configs are compared in
    # the same collective, test_review4_dist_ranks_agree; run once with two agents, it printed the same line.)
    cfg, node0, node1 = nodes
    # node 1's second chunk is another prepare's, of the same size (and so is its manifest)
    other = make_data_dir(tmp_path / "other", [3000, 2000], seed=5)
    shutil.copy(other / "chunk-00001.bin", node1 / "chunk-00001.bin")
    manifest = json.loads((node1 / "manifest.json").read_text())
    manifest["chunks"][1] = json.loads((other / "manifest.json").read_text())["chunks"][1]
    write_manifest(node1, manifest)
    theirs, ours = (json.loads((d / "manifest.json").read_text())["chunks"][1]["md5"] for d in (node0, node1))
    # NOTE: the counts alone were the whole message, the same on both sides
    cause = (f"the ranks see different data (rank 0: 2 chunks, 311 samples, epoch of 311; rank 1: 2 chunks, 311 "
             f"samples, epoch of 311; rank 1 (host {socket.gethostname()}): chunk 2 is "
             f"{node1 / 'chunk-00001.bin'} (head/tail MD5 {ours}), rank 0's is {node0 / 'chunk-00001.bin'} "
             f"(head/tail MD5 {theirs})): ")
    r = torchrun_nodes([_train(cfg, node0), _train(cfg, node1)]).wait()
    for node in r:
        assert node.returncode == 1, node.stderr[-3000:]  # torchrun's, for its rank's 2
        assert "by peer" not in node.stderr, node.stderr[-3000:]
        errors = [x for x in node.stderr.splitlines() if x.startswith("steel: error:")]
        assert len(errors) == 1 and errors[0].startswith(f"steel: error: {cause}"), node.stderr[-3000:]
    assert not list((tmp_path / "run").glob("checkpoints/step-*"))


def test_a_node_that_never_comes_ends_the_other_within_its_timeout(tmp_path, nodes):
    cfg, node0, node1 = nodes
    # No agent of node 1: node 0's agent waits for it `--rdzv_conf join_timeout` seconds, then ends (torch's
    # RendezvousTimeoutError, before any rank or file of the run).
    t0 = time.monotonic()
    (alone,) = torchrun_nodes([_train(cfg, node0)], nnodes=2, join_timeout=3, timeout=60).wait()
    assert alone.returncode == 1 and "RendezvousTimeoutError" in alone.stderr, alone.stderr[-3000:]
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "run").exists()
    # Node 1's agent comes but its rank ends before the startup exchange (no such command: it cannot tell the
    # others): node 0's rank waits for it until parallel.timeout_minutes, then says why it stops.
    r = torchrun_nodes([_train(cfg, node0, "--set", "parallel.timeout_minutes=0.1"),
                        ["-m", "steel.cli", "trian", cfg]], timeout=120).wait()
    assert "steel: error: argument COMMAND: invalid choice: 'trian'" in r[1].stderr, r[1].stderr[-3000:]
    errors = [x for x in r[0].stderr.splitlines() if x.startswith("steel: error:")]
    assert r[0].returncode == 1 and len(errors) == 1, r[0].stderr[-3000:]
    assert errors[0].startswith("steel: error: not every rank reached the startup exchange within "
                                "parallel.timeout_minutes (0.1), or the rendezvous store's host went away (wait "
                                "timeout after 6000ms"), errors
    assert errors[0].endswith("; a rank that ended alone (a crash, a malformed RANK or WORLD_SIZE) printed why "
                              "(STEEL_TRACEBACK=1 shows where)"), errors


def test_first_chunk_difference_names_the_chunk_on_both_sides():
    from steel.data.loader import ChunkRecord, _first_chunk_difference

    ref = [("a" * 32, "/n0/c0.bin"), ("b" * 32, "/n0/c1.bin")]
    mine = [ChunkRecord("a" * 32, "/n1/c0.bin", "web", 10, 1), ChunkRecord("b" * 32, "/n1/c1.bin", "web", 10, 1)]
    assert _first_chunk_difference(ref, mine) is None  # the same chunks at other paths
    assert _first_chunk_difference(ref, mine[:1]) == (
        f"1 chunks, rank 0's chunk 2 is /n0/c1.bin (head/tail MD5 {'b' * 32})")
    extra = ChunkRecord("c" * 32, "/n1/c2.bin", "web", 10, 1)
    assert _first_chunk_difference(ref, [*mine, extra]) == (
        f"chunk 3 is /n1/c2.bin (head/tail MD5 {'c' * 32}), rank 0 has 2 chunks")
    assert _first_chunk_difference(ref, [mine[0], extra]) == (
        f"chunk 2 is /n1/c2.bin (head/tail MD5 {'c' * 32}), rank 0's is /n0/c1.bin (head/tail MD5 {'b' * 32})")
