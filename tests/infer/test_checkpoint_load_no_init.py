"""A run dir's checkpoint is loaded into a model built without random initialisation (every weight is then
loaded; a missing one is an error): the init took 5 of 8.6 s of each eval/generate/export load at steel-1b
widths. The loaded model is bit-identical to the saved one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_dirs import make_run_dir  # noqa: E402

from steel.infer.load import model_from_checkpoint  # noqa: E402
from steel.model import build_model, load_model_config  # noqa: E402


@pytest.mark.parametrize("ffn", ["soft_moe_v3", "swiglu"])
def test_checkpoint_loads_without_random_init(tmp_path, monkeypatch, ffn):
    cfg = load_model_config("tiny")
    cfg.ffn_type = ffn
    torch.manual_seed(0)
    saved = build_model(cfg)
    run = tmp_path / "run"
    make_run_dir(run, saved, [], steps=(3,))
    calls = []
    real = torch.nn.init.normal_
    monkeypatch.setattr(torch.nn.init, "normal_", lambda *a, **k: calls.append(1) or real(*a, **k))
    loaded = model_from_checkpoint(run / "checkpoints" / "step-3")
    assert calls == []  # no weight drawn only to be overwritten
    want, got = saved.state_dict(), loaded.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)  # buffers (RoPE's inv_freq) included
    ids = torch.tensor([[5, 9, 17, 3, 80]])
    assert torch.equal(loaded(ids).logits, saved.eval()(ids).logits)
