"""Fused AdamW on the CPU: chosen by build_optimizer, kept at a resume, and a resume stays bit-identical.

A resume used to switch a fused run to torch's CPU default, a for-loop AdamW (`apply_optim_config` kept
fused for CUDA only, whatever build_optimizer picked); the two round differently, so the losses after the resume drifted
in the 7th digit. `cpu_fused` makes `adamw_fused` pick fused on the CPU, as torch >= 2.4 allows."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import losses, make_data_dir, tiny_config

from steel.train.master_adamw import MasterWeightAdamW
from steel.train.trainer import main, setup


@pytest.fixture(autouse=True)
def cpu_fused(monkeypatch):
    def fused(device):
        return True if device.type in ("cuda", "cpu") else None

    monkeypatch.setattr("steel.train.optim.adamw_fused", fused)
    monkeypatch.setattr("steel.train.trainer.adamw_fused", fused)


@pytest.fixture
def data(tmp_path):
    return make_data_dir(tmp_path / "data", [3000, 2000, 2500])


def fused_flags(optimizer) -> list:
    if isinstance(optimizer, MasterWeightAdamW):
        return [optimizer.fused]
    return [g["fused"] for g in optimizer.param_groups]


def train(cfg):
    trainer = main(setup(str(cfg)))
    flags = fused_flags(trainer.optimizer)
    steps = [(st["step"].device.type, st["step"].dtype, st["step"].item()) for st in trainer.optimizer.state.values()]
    trainer.train()
    trainer.metrics.close()
    return flags, steps


@pytest.mark.parametrize("param_dtype", ["fp32", "bf16"])
def test_cpu_adamw_is_fused_and_an_in_process_resume_is_bit_identical(tmp_path, data, param_dtype):
    cfg = tiny_config(tmp_path, [data], parallel={"param_dtype": param_dtype})
    run = tmp_path / "run"
    flags, _ = train(cfg)
    assert flags in ([True, True], [True])
    full = losses(run)
    last = run / "checkpoints" / "step-10"
    weights, opt = load_file(last / "model.safetensors"), load_file(last / "optimizer.safetensors")
    for n in (8, 10):  # lose everything after step 4, as a crash would; resume in this same process
        shutil.rmtree(run / "checkpoints" / f"step-{n}")
    flags, steps = train(cfg)
    assert losses(run) == full  # bit-identical
    assert flags in ([True, True], [True])  # still fused after the checkpoint's param groups were loaded
    assert steps and all(s == ("cpu", torch.float32, 4.0) for s in steps)
    again, opt_again = load_file(last / "model.safetensors"), load_file(last / "optimizer.safetensors")
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert all(torch.equal(opt[k], opt_again[k]) for k in opt)


def test_a_checkpoint_saved_with_foreach_adamw_resumes_fused_on_the_cpu(tmp_path, data):
    """CPU runs before fused CPU AdamW saved `fused: null`: they go on fused (faster), and say so."""
    cfg = tiny_config(tmp_path, [data], max_steps=8)
    train(cfg)
    run = tmp_path / "run"
    shutil.rmtree(run / "checkpoints" / "step-8")
    groups = run / "checkpoints" / "step-4" / "optimizer.json"
    groups.write_text(json.dumps([{**g, "fused": None, "foreach": None} for g in json.loads(groups.read_text())]))
    flags, steps = train(cfg)
    assert flags == [True, True]
    assert steps and all(s == ("cpu", torch.float32, 4.0) for s in steps)
    assert "optim: fused AdamW None in the checkpoint, True on this device" in (run / "train.log").read_text()
    assert [s for s, _ in losses(run)] == list(range(1, 9))
