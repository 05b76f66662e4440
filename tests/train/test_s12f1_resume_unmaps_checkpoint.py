"""A resume keeps nothing of the checkpoint it loaded mapped: deleting that checkpoint frees its disk space.

safetensors' `load_file` gives views of an mmap of the whole file, and `Optimizer.load_state_dict` keeps a
tensor of its parameter's dtype and device as it is: the resumed checkpoint's optimizer.safetensors stayed
mapped for the whole run, so `checkpoint.keep` deleting it freed nothing until exit (~8.8 GB at 1.1B
parameters; a resume on a quota'd disk then failed with ENOSPC at its next save). Linux only: /proc/self/maps.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import make_data_dir, tiny_config

from steel.train.trainer import fit, main, setup

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")


def _mapped(under: Path) -> list[str]:
    return [line.strip() for line in Path("/proc/self/maps").read_text().splitlines() if str(under) in line]


def test_resume_keeps_no_mapping_of_the_loaded_checkpoint(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = setup(str(tiny_config(tmp_path, [data], max_steps=4, checkpoint={"every": 4, "keep": 5})))
    assert fit(cfg) == 0
    step4 = tmp_path / "run" / "checkpoints" / "step-4"
    want_opt = load_file(step4 / "optimizer.safetensors")  # reference values, read apart (and cloned) here
    want_opt = {k: v.clone() for k, v in want_opt.items()}
    want_model = {k: v.clone() for k, v in load_file(step4 / "model.safetensors").items()}
    cfg.max_steps = 8
    trainer = main(cfg)  # resumes from step 4
    try:
        assert trainer.state.step == 4
        shutil.rmtree(step4)
        assert _mapped(step4) == []  # was: .../step-4/optimizer.safetensors (deleted)
        # the state loaded is the checkpoint's, bit for bit
        names = {p: n for n, p in trainer.model.named_parameters()}
        got = {}
        for p, st in trainer.optimizer.state.items():
            for k, v in st.items():
                got[f"state.{names[p]}.{k}"] = v
        assert got.keys() == want_opt.keys()
        for k, v in want_opt.items():
            assert torch.equal(got[k].cpu().to(v.dtype).reshape(v.shape), v), k
        model = trainer.model.state_dict()
        for k, v in want_model.items():
            assert torch.equal(model[k], v), k
    finally:
        trainer.metrics.close()
        trainer.release_lock()
