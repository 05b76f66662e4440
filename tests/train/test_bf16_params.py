"""`parallel.param_dtype: bf16`: bf16 parameters, fp32 master weights in MasterWeightAdamW, exact resume."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import losses, make_data_dir, tiny_config

from steel.cli import main as steel
from steel.config import ConfigError
from steel.train.master_adamw import MasterWeightAdamW
from steel.train.trainer import main, setup

BF16 = {"param_dtype": "bf16"}


@pytest.fixture
def data(tmp_path):
    return make_data_dir(tmp_path / "data", [3000, 2000, 2500])


def test_bf16_params_train_and_resume_bit_identically(tmp_path, data):
    cfg = tiny_config(tmp_path, [data], parallel=BF16)
    assert steel(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    full = losses(run)
    assert all(math.isfinite(x) for _, x in full) and full[-1][1] < full[0][1]  # it learns
    last = run / "checkpoints" / "step-10"
    model = load_file(last / "model.safetensors")
    assert {v.dtype for v in model.values()} == {torch.bfloat16}
    opt = load_file(last / "optimizer.safetensors")
    masters = {k[len("state."):-len(".master")]: v for k, v in opt.items() if k.endswith(".master")}
    assert set(masters) == set(model) and all(v.dtype == torch.float32 for v in masters.values())
    # the bf16 weights are the rounded fp32 masters, and training moved the masters off the bf16 grid
    assert all(torch.equal(masters[k].to(torch.bfloat16), model[k]) for k in model)
    assert any(not torch.equal(m, m.to(torch.bfloat16).float()) for m in masters.values())

    for n in (8, 10):  # lose everything after step 4, as a crash would, and run the same command again
        shutil.rmtree(run / "checkpoints" / f"step-{n}")
    assert steel(["train", str(cfg)]) == 0
    assert losses(run) == full  # bit-identical: the masters were restored in fp32, not from the bf16 weights
    again = load_file(last / "optimizer.safetensors")
    assert all(torch.equal(again[k], opt[k]) for k in opt)


def test_bf16_params_model_and_optimizer(tmp_path, data):
    trainer = main(setup(str(tiny_config(tmp_path, [data], parallel=BF16))))
    assert {p.dtype for p in trainer.model.parameters()} == {torch.bfloat16}
    assert isinstance(trainer.optimizer, MasterWeightAdamW)
    assert trainer.autocast is None  # the parameters are bf16: nothing to autocast
    # RoPE's inverse frequencies (a buffer) stay fp32
    assert all(b.dtype != torch.bfloat16 for b in trainer.model.buffers() if b.is_floating_point())
    trainer.metrics.close()


def test_param_dtype_change_at_resume_is_refused(tmp_path, data):
    assert steel(["train", str(tiny_config(tmp_path, [data], max_steps=4))]) == 0
    with pytest.raises(ConfigError, match=r"parallel.param_dtype: fp32 in the checkpoint .*, bf16 configured"):
        main(setup(str(tiny_config(tmp_path, [data], max_steps=6, parallel=BF16))))


@pytest.mark.parametrize("parallel,field", [({"mode": "fsdp", **BF16}, "parallel.param_dtype"),
                                            ({"dtype": "fp32", **BF16}, "parallel.dtype")])
def test_contradicting_settings_are_config_errors(tmp_path, data, parallel, field):
    with pytest.raises(ConfigError, match=field):
        setup(str(tiny_config(tmp_path, [data], parallel=parallel)))
