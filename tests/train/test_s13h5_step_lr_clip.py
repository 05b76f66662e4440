"""What the trainer hands the optimizer each step: the schedule's LR of that step, the clipped gradient; and
what it logs: the LR and the MFU of the step.

A mutation audit (session 13) found the suite green with each of: the update using the next step's LR, the
metrics logging the next step's LR, `optim.grad_clip` ignored (never clipping), and the MFU not divided by
the number of ranks. `lr_at` itself is tested by hand (test_trainer.py); nothing checked the trainer used it
for the right step, that clipping reached the update, or the MFU's denominator.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from train_fixtures import make_data_dir, tiny_config

import steel.train.trainer as trainer_mod
from steel.train.trainer import main, setup


@pytest.fixture
def data(tmp_path):
    return make_data_dir(tmp_path / "data", [3000])


def test_each_step_updates_and_logs_with_its_own_lr(tmp_path, data):
    # lr 1e-2, min_lr 1e-3, warmup 2 of 4 steps, cosine: by hand, steps 0..3 (logged as 1..4):
    #   0.01 * 1/2, 0.01 * 2/2, cosine at t = 0 -> 0.01, cosine at t = 1/2 -> 0.001 + 0.009 / 2 = 0.0055.
    expected = [0.005, 0.01, 0.01, 0.0055]
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    trainer = main(setup(str(cfg)))
    used = []
    step = trainer.optimizer.step

    def recording_step(*a, **k):
        used.append([g["lr"] for g in trainer.optimizer.param_groups])
        return step(*a, **k)

    trainer.optimizer.step = recording_step
    assert trainer.train() == "done"
    trainer.metrics.close()
    assert [lrs[0] for lrs in used] == pytest.approx(expected, rel=1e-12)
    assert all(len(set(lrs)) == 1 for lrs in used)  # both groups (decayed, not decayed) follow the schedule
    rec = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rec] == [1, 2, 3, 4]
    assert [r["lr"] for r in rec] == pytest.approx(expected, rel=1e-12)


def test_grad_clip_reaches_the_update(tmp_path, data):
    cfg = tiny_config(tmp_path, [data], max_steps=1, grad_accum=1, optim={"grad_clip": 0.01})
    trainer = main(setup(str(cfg)))
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 256, (4, 16), generator=g)

    class Fixed:
        def next_batch(self):
            return {"input_ids": ids, "labels": ids}

        def state_dict(self):
            return {}

    trainer.data = Fixed()
    ref_model = copy.deepcopy(trainer.model)
    logits = ref_model(input_ids=ids).logits
    F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).backward()
    ref = {k: p.grad for k, p in ref_model.named_parameters()}
    ref_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in ref.values()]))
    assert ref_norm > 1.0  # far above the limit 0.01: the clip must scale by ~0.01 / norm
    scale = 0.01 / (ref_norm + 1e-6)  # torch.nn.utils.clip_grad_norm_'s factor

    got = {}
    trainer.optimizer.step = lambda: got.update({k: p.grad.clone() for k, p in trainer.model.named_parameters()})
    _, norm, _ = trainer.train_step()
    trainer.metrics.close()
    assert norm == pytest.approx(float(ref_norm), rel=1e-5)  # the logged norm is the norm before clipping
    for k in ref:
        # fp32, the same math in another summation order: 1e-5 relative.
        torch.testing.assert_close(got[k], ref[k] * scale, rtol=1e-5, atol=1e-10, msg=k)


def test_mfu_is_per_device(tmp_path, data, monkeypatch):
    """MFU = FLOP/s per device / the device's peak: the global batch's FLOP/s divided by the number of ranks.

    Two ranks are simulated in one process (collectives are sums over one rank here, the save skipped): only the
    world size reaches the MFU's denominator; `computed_per_s` counts the global batch, as under torchrun."""
    peak = 1e9
    monkeypatch.setattr(trainer_mod, "peak_flops", lambda device: (peak, "fake accelerator"))
    monkeypatch.setattr(trainer_mod, "all_reduce_sum", lambda t, d: t)
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    trainer = main(setup(str(cfg)))
    trainer.d = dataclasses.replace(trainer.d, world_size=2)
    trainer.save = lambda: None
    trainer.train()
    trainer.metrics.close()
    rec = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rec) == 2
    for r in rec:
        per_device = r["computed_per_s"] * trainer.flops_per_token / 2
        assert r["mfu"] == pytest.approx(per_device / peak, rel=1e-12)


def test_a_finite_loss_with_a_non_finite_gradient_is_skipped(tmp_path, data):
    """A backward that overflows (finite loss, inf gradient: fp16/bf16 activations) must not reach AdamW, which
    would turn every weight it touches into NaN. The existing test poisons the loss, which hides this case."""
    cfg = tiny_config(tmp_path, [data], max_steps=1, grad_accum=1)
    trainer = main(setup(str(cfg)))
    weight = dict(trainer.model.named_parameters())["model.layers.0.mlp.down_proj.weight"]
    weight.register_hook(lambda g: g * float("inf"))  # one overflowing gradient; the forward is untouched
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    loss, norm, _ = trainer.train_step()
    trainer.metrics.close()
    assert loss == loss and abs(loss) != float("inf")  # the loss is finite
    assert norm != norm or norm == float("inf")  # the norm is not
    assert trainer.state.skipped == 1
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no weight moved, none became NaN
