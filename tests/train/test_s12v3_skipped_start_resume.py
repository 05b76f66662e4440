"""A checkpoint written before any optimizer update (every step so far skipped: a global batch without targets,
or a non-finite loss) leaves AdamW without state, and a resume from it continues bit for bit as the
uninterrupted run. `torch.distributed.checkpoint`'s `get_state_dict`/`set_state_dict` initialise an optimizer
without state by one step on zero gradients at lr 0 (`_init_optim_state`): AdamW's step count became 1 with zero
moments, in the saving process and in the checkpoint, so the first real update used step 2's bias correction
(an update ~0.74x the size at the first step) and the run depended on whether it had been checkpointed then.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import losses, make_data_dir, tiny_config

from steel.data.loader import PretrainLoader
from steel.train.trainer import fit, setup

EMPTY = {1, 2}  # steps whose rows have no target: the run's first update is step 3's


def masked_source(data):
    class Masked:
        """The pretraining loader's batches, every label -100 in the EMPTY steps (a custom `make_data`)."""

        def __init__(self, cfg, d):
            self.inner = PretrainLoader([str(data)], cfg.data.seq_len, cfg.micro_batch, seed=cfg.data.seed,
                                        rank=d.rank, world_size=d.world_size)
            self.calls, self.grad_accum = 0, cfg.grad_accum

        def next_batch(self):
            b = self.inner.next_batch()
            self.calls += 1
            if (self.calls - 1) // self.grad_accum + 1 in EMPTY:
                b["shift_labels"] = torch.full_like(b["shift_labels"], -100)
            return b

        def state_dict(self):
            return {**self.inner.state_dict(), "calls": self.calls}

        def load_state_dict(self, s):
            s = dict(s)
            self.calls = s.pop("calls")
            self.inner.load_state_dict(s)

    return Masked


@pytest.mark.parametrize("parallel", [{}, {"param_dtype": "bf16"}], ids=["fp32", "bf16-master-weights"])
def test_resume_after_skipped_first_steps_is_bit_identical(tmp_path, parallel):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    source = masked_source(data)
    runs = {}
    for name, cuts in (("straight", [5]), ("resumed", [1, 2, 5])):  # saves at steps 1 and 2: no update yet
        (tmp_path / name).mkdir()
        for max_steps in cuts:
            cfg = tiny_config(tmp_path / name, [data], max_steps=max_steps, grad_accum=1, parallel=parallel,
                              checkpoint={"every": 100, "keep": 10})
            assert fit(setup(str(cfg)), make_data=source) == 0
        runs[name] = tmp_path / name / "run"
    got, want = losses(runs["resumed"]), losses(runs["straight"])
    assert [s for s, x in want if x is None] == [1, 2] and got == want
    a, b = (load_file(r / "checkpoints" / "step-5" / "model.safetensors") for r in (runs["resumed"], runs["straight"]))
    assert all(torch.equal(a[k], b[k]) for k in b)
    # three updates (steps 3-5): AdamW counts three in either run
    for r in runs.values():
        opt = load_file(r / "checkpoints" / "step-5" / "optimizer.safetensors")
        assert {float(v) for k, v in opt.items() if k.endswith(".step")} == {3.0}
    # the checkpoints before any update hold no optimizer state, as the optimizer had none
    assert load_file(runs["resumed"] / "checkpoints" / "step-2" / "optimizer.safetensors") == {}
    assert json.loads((runs["resumed"] / "checkpoints" / "step-2" / "train_state.json").read_text())["skipped"] == 2
