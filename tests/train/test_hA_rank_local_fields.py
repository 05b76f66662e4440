"""Fields each rank may set for itself are not compared across ranks: `checkpoint.stop_after_minutes` (the stop is
agreed every step by an all-reduce, so the first rank past its limit stops every rank at the same step) and
`data.verify` (whether a rank hashes its own chunk files). Both were refused as a config that differs."""

import os
import subprocess
import sys
from pathlib import Path

import yaml
from train_fixtures import make_data_dir, tiny_config

from steel.config import load_config
from steel.train.config import TrainConfig
from steel.train.trainer import rank_agreed_values

RANK_WRAPPER = """
import os, sys
from steel.cli import main
args = ["train", sys.argv[1]]
if os.environ["RANK"] == "1":
    for o in sys.argv[2:]:
        args += ["--set", o]
sys.exit(main(args))
"""


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
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ranks disagree" not in r.stderr
    run = tmp_path / "run"
    # Both ranks stopped after the first step and saved it together (rank 0 has no limit of its own).
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-1"]
    assert "stop on another rank: checkpoint saved at step 1, stopping" in (run / "train.log").read_text()


def test_rank_local_fields_are_not_compared(tmp_path):
    a = yaml.safe_load(tiny_config(tmp_path, [tmp_path / "a"]).read_text())
    b = {**a, "checkpoint": {**a["checkpoint"], "stop_after_minutes": 55.0}, "data": {**a["data"], "verify": False}}
    c = {**a, "max_nonfinite": 9}  # a rank stopping at another non-finite count would leave the others hanging
    vals = []
    for i, raw in enumerate((a, b, c)):
        p = tmp_path / f"{i}.yaml"
        p.write_text(yaml.safe_dump(raw))
        vals.append(rank_agreed_values(load_config(TrainConfig, str(p), []), {"hidden_size": 32}, Path("x/step-3")))
    assert vals[0] == vals[1]
    assert {k for k in vals[0] if vals[0][k] != vals[2][k]} == {"max_nonfinite"}
