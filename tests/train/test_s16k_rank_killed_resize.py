"""A lab's 2-rank FSDP2 run that loses a rank to a SIGKILL (an OOM killer), resumed on 1 process, then on 2 ranks
again (session 16, K): the global batches go on exactly, whatever the world size, as the README promises.

Covered nowhere else as one piece: a rank killed under torchrun (test_distributed resumes runs that ended
cleanly), and a world-size change of an FSDP2 run, down to one unwrapped process and back (test_distributed's
re-split test goes from 1 process to 2 DDP ranks only)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import Launch, _marked, launch, losses, make_data_dir, tiny_config

from steel.cli import main as steel

# A constant LR: max_steps differs between the phases (the first is killed long before its end) and must not
# change the LR of any step, so that every phase's losses are comparable with one uninterrupted run.
OPTIM = {"lr": 1e-2, "min_lr": 1e-2, "warmup_steps": 0, "schedule": "constant"}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}


def _torchrun(cfg: Path, *sets: str) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "steel.cli", "train", str(cfg)]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def _rank_pid(mark: str, rank: int) -> int | None:
    """The pid of the launch's worker process of global rank `rank` (torchrun sets RANK in its environment)."""
    for pid in _marked(mark):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"steel.cli" in cmdline and b"torch.distributed.run" not in cmdline:
            return pid
    return None


def _steps_logged(run: Path) -> int:
    try:
        return len((run / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_rank_sigkilled_then_resumed_on_one_process_and_on_two(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000, 2500])
    # The reference: one process, micro-batch 2 x 4 accumulation = the 2 ranks' global batch of 8 samples.
    (tmp_path / "ref").mkdir()
    ref_cfg = tiny_config(tmp_path / "ref", [data], max_steps=6, micro_batch=2, grad_accum=4, optim=OPTIM,
                          checkpoint={"every": 2, "keep": 10})
    assert steel(["train", str(ref_cfg)]) == 0
    want = losses(tmp_path / "ref" / "run")

    cfg = tiny_config(tmp_path, [data], max_steps=400, micro_batch=2, grad_accum=2, optim=OPTIM,
                      parallel={"mode": "fsdp"}, checkpoint={"every": 2, "keep": 10})
    run = tmp_path / "run"
    with Launch([_torchrun(cfg)], env=ENV, timeout=120) as job:
        deadline = time.monotonic() + 90
        while not ((run / "checkpoints" / "step-2").is_dir() and _steps_logged(run) >= 3):
            assert job.procs[0].poll() is None and time.monotonic() < deadline, job.out[0]
            time.sleep(0.02)
        pid = _rank_pid(job.marks[0], 1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # as the OOM killer does: no handler runs
        r = job.wait()[0]
    # torchrun stops the other rank and reports the killed one as the root cause; no checkpoint was written
    # after the kill (the last complete one is the resume point).
    assert r.returncode != 0 and "SIGKILL" in r.stderr, r.stderr[-3000:]
    assert _steps_logged(run) < 400
    # Resume from step 2, whatever steps the run saved after it before the kill (a kill point made exact).
    for d in (run / "checkpoints").iterdir():
        if d.name != "step-2":
            shutil.rmtree(d)

    # One process (no torchrun) picks the FSDP2 checkpoint up: world size 2 -> 1, the global batch kept by
    # doubling the accumulation.
    assert steel(["train", str(cfg), "--set", "max_steps=4", "--set", "grad_accum=4"]) == 0
    log = (run / "train.log").read_text()
    assert "data: world size 2 -> 1, the global order is re-split" in log
    # Two FSDP2 ranks again: 1 -> 2.
    r = launch(_torchrun(cfg, "max_steps=6"), env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "data: world size 1 -> 2, the global order is re-split" in (run / "train.log").read_text()

    got = losses(run)
    assert [s for s, _ in got] == [s for s, _ in want] == list(range(1, 7))  # every step logged once
    # fp32 sums in another order (per-rank partial sums, the all-reduce, the FSDP shards): a few ulps per step;
    # 1e-5 relative is far below the step-to-step loss change (~1e-2 here). A sample skipped or drawn twice
    # changes the loss of its step by ~1e-3 relative or more.
    for (step, a), (_, b) in zip(got, want):
        assert a == pytest.approx(b, rel=1e-5), step
    for step, world in ((2, 2), (4, 1), (6, 2)):
        state = json.loads((run / "checkpoints" / f"step-{step}" / "data.json").read_text())
        assert (state["consumed"], state["world_size"], state["epoch"]) == (8 * step, world, 0)
    wa = load_file(run / "checkpoints" / "step-6" / "model.safetensors")
    wb = load_file(tmp_path / "ref" / "run" / "checkpoints" / "step-6" / "model.safetensors")
    assert set(wa) == set(wb)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)  # same reason as the losses
