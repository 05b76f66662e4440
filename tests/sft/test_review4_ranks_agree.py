"""`steel sft` under torchrun refuses ranks given different configs or building different rows (as `steel
train` does): every rank builds its rows from its own config file and data copy, and another `optim.lr` on one
node drifted the DDP replicas apart without a word, another data copy trained other rows on that rank."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import yaml
from sft_runs import write_sft_run

from steel.sft.train import SFT_PER_NODE_FIELDS, setup
from steel.train.trainer import rank_agreed_values

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from train_fixtures import launch  # noqa: E402

# Rank 1 of the launch gets its own `--set`s (a node with another copy of the config or the data).
RANK_WRAPPER = """
import os, sys
from steel.cli import main
args = ["sft", sys.argv[1]]
if os.environ["RANK"] == "1":
    for o in sys.argv[2:]:
        args += ["--set", o]
sys.exit(main(args))
"""


def test_ranks_with_another_lr_or_other_data_are_refused(tmp_path, tiny_tokenizer_dir):
    cfg = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=2, extra="parallel: {mode: ddp}\n")
    other = tmp_path / "node1"  # rank 1's data.root: the same file name, another record in it
    other.mkdir()
    records = json.loads((tmp_path / "chat.json").read_text(encoding="utf-8"))
    records[3]["output"] = "另一个答案"
    (other / "chat.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    wrapper = tmp_path / "rank_wrapper.py"
    wrapper.write_text(RANK_WRAPPER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(wrapper),
           str(cfg), f"data.root={other}", "optim.lr=0.001"]
    r = launch(cmd, env=env, timeout=240)
    assert r.returncode != 0
    assert r.stderr.count("steel: error: the ranks disagree (rank 1: ") == 2, r.stderr[-3000:]
    line = next(x for x in r.stderr.splitlines() if x.startswith("steel: error: the ranks disagree"))
    assert "optim.lr 0.001 (rank 0: 2e-05)" in line and "sft rows sha256 " in line, line
    assert "data.root" not in line  # a per-node path: what it leads to is compared (the rows)
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())


def test_per_node_paths_may_differ(tmp_path, tiny_tokenizer_dir):
    cfg = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=2)
    raw = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    moved = {**raw, "init": "/node1/init", "run_dir": "/node1/run", "tokenizer": "/node1/tok",
             "data": {**raw["data"], "root": "/node1/data", "datasets": [{"name": "chat", "path": ["/n1/chat.json"]}]},
             "log": {**raw["log"], "every": 5}, "checkpoint": {**raw.get("checkpoint", {}), "stop_after_minutes": 230.0}}
    seeded = {**raw, "data": {**raw["data"], "seed": 7}, "allow_tokenizer_change": True}
    vals = []
    for i, c in enumerate((raw, moved, seeded)):
        p = tmp_path / f"{i}.yaml"
        p.write_text(yaml.safe_dump(c), encoding="utf-8")
        vals.append(rank_agreed_values(setup(str(p)), {"hidden_size": 32}, None, SFT_PER_NODE_FIELDS))
    assert vals[0] == vals[1]
    assert {k for k in vals[0] if vals[0][k] != vals[2][k]} == {"data.seed", "allow_tokenizer_change"}
    assert vals[0]["resumed checkpoint"] is None


def test_the_checkpoint_init_resolves_to_is_compared(tmp_path, tiny_tokenizer_dir):
    """Ranks resolving a run-dir `init` to different newest checkpoints (one written between their reads) would
    start from different weights; the name is compared on a fresh start (at a resume the SFT checkpoint is)."""
    from steel.sft.train import check_ranks_agree

    cfg = setup(str(write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=2)))
    cfg.init = "/runs/pretrain"
    seen = []

    class Two:
        world_size, rank = 2, 1

    def capture(values, d, hint):
        seen.append(values)

    import steel.train.distributed as dist_mod

    orig = dist_mod.check_same_on_every_rank
    dist_mod.check_same_on_every_rank = capture
    try:
        rows = torch.zeros(2, 4, dtype=torch.long)
        for init_from, latest in ((Path("/runs/pretrain/checkpoints/step-40"), None),
                                  (Path("/runs/pretrain/checkpoints/step-60"), None),
                                  (Path("/runs/pretrain/checkpoints/step-60"), Path("/runs/sft/checkpoints/step-2"))):
            check_ranks_agree(cfg, {}, latest, rows, rows, Two(), init_from)
    finally:
        dist_mod.check_same_on_every_rank = orig
    assert [v["init checkpoint"] for v in seen] == ["step-40", "step-60", None]
