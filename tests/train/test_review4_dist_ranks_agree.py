"""Ranks given different configs, or seeing different checkpoints, are refused on every rank before training.
Fields each rank may set for itself are not compared: `checkpoint.stop_after_minutes` (the stop is agreed every
step by an all-reduce, so the first rank past its limit stops every rank at the same step) and `data.verify`
(whether a rank hashes its own chunk files); both were refused as a config that differs."""

import os
import sys
from pathlib import Path

import yaml
from train_fixtures import launch, make_data_dir, tiny_config

from steel.cli import main as steel
from steel.config import load_config
from steel.train.config import TrainConfig
from steel.train.trainer import rank_agreed_values

# Rank 1 of the launch gets its own `--set`s and, with STALE_LISTING, sees no checkpoint in run_dir (as a
# node whose view of a shared file system lags would).
RANK_WRAPPER = """
import os, sys
from steel.cli import main
from steel.train import checkpoint
args = ["train", sys.argv[1]]
if os.environ["RANK"] == "1":
    for o in sys.argv[2:]:
        args += ["--set", o]
    if os.environ.get("STALE_LISTING"):
        checkpoint.latest_checkpoint = lambda run_dir: None
sys.exit(main(args))
"""


def test_ranks_with_another_lr_or_checkpoint_are_refused(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp"})
    assert steel(["train", str(cfg)]) == 0  # one process: step-2, which rank 0 resumes below
    wrapper = tmp_path / "rank_wrapper.py"
    wrapper.write_text(RANK_WRAPPER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1", "STALE_LISTING": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(wrapper),
           str(cfg), "max_steps=4", "optim.lr=0.02"]
    r = launch(cmd, env=env, timeout=180)
    assert r.returncode != 0
    # Both ranks fail with the same error, naming what rank 1 disagrees on and rank 0's values.
    assert r.stderr.count("steel: error: the ranks disagree (rank 1: ") == 2, r.stderr[-3000:]
    for part in ("max_steps 4 (rank 0: 2)", "optim.lr 0.02 (rank 0: 0.01)", "resumed checkpoint None (rank 0: 'step-2')"):
        assert part in r.stderr, r.stderr[-3000:]
    # Refused before a step: rank 0 did not train on from its checkpoint.
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 2


def test_per_node_paths_and_logging_may_differ(tmp_path):
    """Node-local copies of the data and another spelling of the run dir are allowed (compared by content
    elsewhere); a field that changes the training is not."""
    a = yaml.safe_load(tiny_config(tmp_path, [tmp_path / "a"], data={"seed": 3}).read_text())
    b = {**a, "run_dir": "/elsewhere/run", "data": {**a["data"], "dirs": ["/local/copy"], "verify": False},
         "log": {**a["log"], "every": 7}, "checkpoint": {**a["checkpoint"], "stop_after_minutes": 55.0}}
    # a rank stopping at another non-finite count would leave the others hanging: compared
    c = {**a, "data": {**a["data"], "seed": 4}, "max_nonfinite": 9}
    vals = []
    for i, raw in enumerate((a, b, c)):
        p = tmp_path / f"{i}.yaml"
        p.write_text(yaml.safe_dump(raw))
        vals.append(rank_agreed_values(load_config(TrainConfig, str(p), []), {"hidden_size": 32}, Path("x/step-3")))
    assert vals[0] == vals[1]
    assert {k for k in vals[0] if vals[0][k] != vals[2][k]} == {"data.seed", "max_nonfinite"}


def test_rank_with_its_own_time_limit_and_no_verify_stops_every_rank_together(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=4, micro_batch=2, parallel={"mode": "ddp"},
                      checkpoint={"every": 4, "keep": 5})
    wrapper = tmp_path / "rank_wrapper.py"
    wrapper.write_text(RANK_WRAPPER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    # Rank 1 alone has a time limit its process has already passed (0.0001 min = 6 ms) and skips the hashing.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(wrapper),
           str(cfg), "checkpoint.stop_after_minutes=0.0001", "data.verify=false"]
    r = launch(cmd, env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ranks disagree" not in r.stderr
    run = tmp_path / "run"
    # Both ranks stopped after the first step and saved it together (rank 0 has no limit of its own).
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-1"]
    assert "stop on another rank: checkpoint saved at step 1, stopping" in (run / "train.log").read_text()
