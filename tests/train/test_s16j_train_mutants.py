"""Tests written by a mutation audit of training (session 16, J): the schedule, the master-weight optimizer and
checkpoint cleanup. Each kills a deliberate bug (named in the comment) that the suite let pass, against a value
worked out by hand or torch.optim.AdamW.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
from test_master_adamw import SHAPES, _grads, _groups, _params
from train_fixtures import Launch

from steel.train.checkpoint import list_checkpoints, remove_partial
from steel.train.config import OptimSection
from steel.train.distributed import decoder_layers
from steel.train.master_adamw import MasterWeightAdamW
from steel.train.optim import lr_at
from steel.train.trainer import TrainState


def test_wsd_decays_linearly_to_min_lr_from_the_first_decay_step():
    # decay_steps 20 of 100: steps 80..99 go down by (lr - min_lr) / 20 each, the first of them already one
    # twentieth down, the last at min_lr. By hand with min_lr 0.1 (test_trainer's by-hand case has min_lr 0).
    # Mutants: the hold one step longer (step 80 at lr); the decay towards 0 rather than min_lr.
    w = OptimSection(lr=1.0, min_lr=0.1, warmup_steps=10, schedule="wsd", decay_steps=20)
    assert lr_at(79, w, 100) == 1.0
    assert lr_at(80, w, 100) == pytest.approx(1.0 - 0.9 / 20)
    assert lr_at(89, w, 100) == pytest.approx(0.55)
    assert lr_at(99, w, 100) == pytest.approx(0.1)
    assert lr_at(120, w, 100) == pytest.approx(0.1)  # past max_steps (a run extended at resume): stays at min_lr


def test_a_clip_applies_to_its_own_step_only():
    # clip_grad_norm_ before step 0 only: step 1 takes its gradients unscaled, as torch.optim.AdamW after a
    # clip_grad_norm_ on step 0 alone (mutant: the clip factor was kept and applied again at step 1).
    model = _params(torch.bfloat16)
    ref = [p.detach().float().clone().requires_grad_() for p in model]
    opt = MasterWeightAdamW(_groups(model), lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    ref_opt = torch.optim.AdamW(_groups(ref), lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    for step in (1, 2):  # _grads(1): norm ~30, clipped at 1.0
        for p, r, gr in zip(model, ref, _grads(step)):
            p.grad, r.grad = gr.clone(), gr.float()
        if step == 1:
            assert torch.equal(opt.clip_grad_norm_(1.0), torch.nn.utils.clip_grad_norm_(ref, 1.0))
        opt.step()
        ref_opt.step()
        ref_opt.zero_grad()
    assert len(model) == len(SHAPES)
    for p, r in zip(model, ref):
        assert torch.equal(opt.state[p]["master"], r.detach())


def _ckpt(path, tag: str) -> None:
    path.mkdir(parents=True)
    (path / "train_state.json").write_text(json.dumps({"tag": tag}))


def test_a_landed_resave_leaves_its_old_copy_to_be_deleted(tmp_path):
    # A re-save of step 3 renamed step-3/ to step-3.old/, its new step-3/ in, then a kill before the old one was
    # deleted: step-3/ is the checkpoint, step-3.old/ goes (mutant: step-3.old/ was put back over step-3/, a
    # rename onto a full directory: an OSError at every later start). When the new one did not land, the old one
    # comes back.
    root = tmp_path / "checkpoints"
    _ckpt(root / "step-2", "2")
    _ckpt(root / "step-3", "new")
    _ckpt(root / "step-3.old", "old")
    remove_partial(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["step-2", "step-3"]
    assert json.loads((root / "step-3" / "train_state.json").read_text()) == {"tag": "new"}
    (root / "step-3").rename(root / "step-3.old")
    remove_partial(tmp_path)
    assert [(n, p.name) for n, p in list_checkpoints(tmp_path)] == [(2, "step-2"), (3, "step-3")]
    assert json.loads((root / "step-3" / "train_state.json").read_text()) == {"tag": "new"}


def test_decoder_layers_take_the_outer_list_on_a_tie():
    # "Outermost first on a tie": 2 blocks named `layers`, each holding a 2-long ModuleList `layer` (T5-style
    # sublayers): the blocks are the FSDP/checkpoint units (mutant: the last list of the tie, one block's sublayers).
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)])

    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList([Block(), Block()])
    assert decoder_layers(model) == list(model.layers)


RANK_SCRIPT = """
import sys
import torch
import torch.distributed as dist
from steel.train.distributed import Dist, fail_together
rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=rank, world_size=3)
try:
    with fail_together(Dist(rank, 3, rank, torch.device("cpu"), "ddp"), "at startup"):
        if rank:
            raise ValueError(f"rank {rank}'s own refusal")
except Exception as e:
    print(f"{rank}|{type(e).__name__}|{e}", flush=True)
dist.destroy_process_group()
"""


def test_a_rank_that_did_not_fail_names_the_first_failing_rank(tmp_path):
    # 3 gloo ranks, ranks 1 and 2 refuse: each raises its own error, rank 0 the first failing rank's with the count
    # of the others (mutant: the last failing rank's; with 2 ranks the first and the last are one).
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmds = [[sys.executable, str(script), str(r), str(tmp_path / "store")] for r in range(3)]
    runs = Launch(cmds, env=env, timeout=120).wait()
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr[-2000:] for r in runs]
    assert [r.stdout.strip() for r in runs] == [
        "0|ConfigError|rank 1 (and 1 more rank) stopped at startup: rank 1's own refusal",
        "1|ValueError|rank 1's own refusal",
        "2|ValueError|rank 2's own refusal",
    ]


def test_train_state_round_trips_through_its_checkpoint_json():
    # Every counter comes back as saved (mutants: `targets` taken from `tokens`, which SFT's prompts make larger;
    # the non-finite run reset, so a resume gave a diverging run max_nonfinite more steps). A checkpoint written
    # before `targets` existed counted targets in `tokens`.
    s = TrainState(step=7, tokens=700, targets=300, skipped=3, nonfinite_run=2, anneal={"step": 5, "mode": "mix"})
    back = TrainState()
    back.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert back.state_dict() == s.state_dict()
    old = {k: v for k, v in s.state_dict().items() if k != "targets"}
    back.load_state_dict(old)
    assert back.targets == 700
