"""Review 5: a model config's `dtype` is not a change of the model at resume.

`steel sft` saves the init's `model.config.to_dict()` in its checkpoints. Since 2026-12-07 a Steel run dir
is loaded as fp32 parameters with `dtype: float32`; SFT runs started before saved `dtype: null`, and their
resume warned "model config differs ... in dtype; ... the model computes something else than before",
which is false: the trainer casts the parameters to parallel.param_dtype whatever the config says.
"""

import json
import sys
from pathlib import Path

import torch

from steel.infer.load import load_model
from steel.model import build_model, load_model_config
from steel.train.trainer import changed_model_fields

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infer"))

from run_dirs import make_run_dir  # noqa: E402


def test_an_old_sft_model_config_with_dtype_null_is_no_change(tmp_path):
    torch.manual_seed(0)
    run = make_run_dir(tmp_path / "pre", build_model(load_model_config("tiny")), [])
    saved = json.loads((run / "checkpoints" / "step-2" / "model_config.json").read_text(encoding="utf-8"))
    assert saved["dtype"] is None  # what a Steel run (and an SFT run from it, before 2026-12-07) records
    now = load_model(run, "cpu", None).config.to_dict()  # what `steel sft` saves and compares at resume
    assert now["dtype"] == "float32"
    assert changed_model_fields(saved, now) == []
    # A field that changes the computation is still named.
    assert changed_model_fields(saved, {**now, "rms_norm_eps": 1e-3}) == ["rms_norm_eps"]
