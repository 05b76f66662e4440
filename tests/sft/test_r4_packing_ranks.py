"""The early packing refusal (a stock init with `data.packing: true`, before the data is read) under torchrun
with ranks that disagree on it: every rank names what differs, as check_ranks_agree did when the refusal came
after it. Moved before it, the rank whose config alone asked for packing raised alone and the other died in its
next collective (gloo: "Connection closed by peer"; NCCL: a hang until parallel.timeout_minutes)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from train_fixtures import launch  # noqa: E402

WRAPPER = """
import os, sys
from steel.cli import main
args = ["sft", sys.argv[1]]
if os.environ["RANK"] == "1":
    args += ["--set", "data.packing=true"]
sys.exit(main(args))
"""


def test_ranks_disagreeing_on_packing_all_name_it(tmp_path, tiny_llama_dir):
    (tmp_path / "chat.json").write_text(json.dumps([{"instruction": f"q{i}", "output": f"a{i}"} for i in range(6)]))
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"init: {tiny_llama_dir}\nrun_dir: {tmp_path / 'run'}\nmax_steps: 2\nmicro_batch: 2\n"
                   "parallel: {mode: ddp}\ndata: {seq_len: 64, packing: false, datasets: [{name: c, path: [chat.json]}]}\n"
                   "log: {every: 1, tensorboard: false, progress: false}\n")
    wrapper = tmp_path / "rank_wrapper.py"
    wrapper.write_text(WRAPPER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(wrapper),
           str(cfg)]
    r = launch(cmd, env=env, timeout=240)
    assert r.returncode != 0
    errors = [x for x in r.stderr.splitlines() if x.startswith("steel: error:")]
    assert len(errors) == 2, r.stderr[-3000:]
    assert all("the ranks disagree (rank 1: data.packing True (rank 0: False))" in x for x in errors), errors
    assert "Connection closed by peer" not in r.stderr
