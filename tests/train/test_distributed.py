"""DDP and FSDP2 on CPU with gloo, 2 processes under torchrun: same loss as one process, resume, re-split."""

import json
import os
import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import launch, losses, make_data_dir, needs_cpu_fsdp, tiny_config

from steel.cli import main as steel

STEPS = 6
# Far below the ~0.8 gradient norms of these runs, so every step clips: the 2-rank runs must clip by the norm
# over all ranks' shards (FSDP) and all micro-batches, as one process does.
CLIP = {"lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 2, "schedule": "cosine", "grad_clip": 0.05}


def torchrun(cfg, *overrides):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "steel.cli", "train", str(cfg)]
    for o in overrides:
        cmd += ["--set", o]
    r = launch(cmd, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process: micro-batch 4 x 2 accumulation; the global batch the 2-rank runs split."""
    tmp = tmp_path_factory.mktemp("ref")
    data = make_data_dir(tmp / "data", [3000, 2000, 2500])
    cfg = tiny_config(tmp, [data], max_steps=STEPS, checkpoint={"every": 3, "keep": 5}, optim=CLIP)
    assert steel(["train", str(cfg)]) == 0
    norms = [json.loads(r)["grad_norm"] for r in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    assert min(norms) > 10 * CLIP["grad_clip"], norms  # clipping is active at every step
    return data, tmp / "run"


def final_weights(run):
    return load_file(run / "checkpoints" / f"step-{STEPS}" / "model.safetensors")


@pytest.mark.parametrize("mode", ["ddp", pytest.param("fsdp", marks=needs_cpu_fsdp)])
def test_two_ranks_match_one_process_and_resume(tmp_path, reference, mode):
    data, ref_run = reference
    cfg = tiny_config(tmp_path, [data], max_steps=STEPS, micro_batch=2, parallel={"mode": mode},
                      checkpoint={"every": 3, "keep": 5}, optim=CLIP)
    torchrun(cfg)
    run = tmp_path / "run"
    got, want = losses(run), losses(ref_run)
    assert [s for s, _ in got] == [s for s, _ in want]
    # fp32 sums in another order (per-rank partial sums, all-reduce): a few ulps per step, compounding
    # through 6 AdamW steps at lr 1e-2; 1e-5 relative is far below the step-to-step loss change (~1e-2).
    for (_, a), (_, b) in zip(got, want):
        assert a == pytest.approx(b, rel=1e-5)
    wa, wb = final_weights(run), final_weights(ref_run)
    assert set(wa) == set(wb)  # FSDP/DDP checkpoints carry the plain HF names
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)  # same reason as above
    # Resume under the same wrapping: bit-identical to the uninterrupted 2-rank run.
    shutil.rmtree(run / "checkpoints" / f"step-{STEPS}")
    torchrun(cfg)
    assert losses(run) == got
    assert all(torch.equal(final_weights(run)[k], wa[k]) for k in wa)


def test_world_size_change_resplits(tmp_path, reference):
    """A 1-process checkpoint resumed by 2 DDP ranks continues the same global order."""
    data, ref_run = reference
    run = tmp_path / "run"
    shutil.copytree(ref_run, run)
    shutil.rmtree(run / "checkpoints" / f"step-{STEPS}")
    cfg = tiny_config(tmp_path, [data], max_steps=STEPS, micro_batch=2, parallel={"mode": "ddp"},
                      checkpoint={"every": 3, "keep": 5}, optim=CLIP)
    torchrun(cfg)
    got, want = losses(run), losses(ref_run)
    assert got[:3] == want[:3]
    for (_, a), (_, b) in zip(got[3:], want[3:]):
        assert a == pytest.approx(b, rel=1e-5)  # summation order only, as above


def test_ddp_with_bf16_params_resumes_bit_identically(tmp_path, reference):
    """parallel.param_dtype bf16 under DDP: bf16 gradients all-reduced (gloo), fp32 masters on every rank."""
    data, _ = reference
    cfg = tiny_config(tmp_path, [data], max_steps=STEPS, micro_batch=2, checkpoint={"every": 3, "keep": 5},
                      parallel={"mode": "ddp", "param_dtype": "bf16"})
    torchrun(cfg)
    run = tmp_path / "run"
    got = losses(run)
    assert [s for s, _ in got] == list(range(1, STEPS + 1)) and got[-1][1] < got[0][1]
    w = final_weights(run)
    assert {v.dtype for v in w.values()} == {torch.bfloat16}
    shutil.rmtree(run / "checkpoints" / f"step-{STEPS}")
    torchrun(cfg)
    assert losses(run) == got
    assert all(torch.equal(final_weights(run)[k], w[k]) for k in w)
