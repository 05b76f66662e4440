"""A refusal that one rank alone raises at `steel sft`'s start stops every rank with that error under torchrun.

Each rank reads its own config, init and data: when rank 1 alone was refused (a seq_len beyond its init's
context, a dataset file missing on its node), it printed the cause and rank 0 died in its next collective with
a gloo "Connection closed by peer" traceback (under NCCL: a hang until parallel.timeout_minutes). Two ranks on
CPU (gloo); each rank reports its exit code and exits 0 when it is the refusal's 2, so torchrun never stops a
rank before it has printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# argv: CFG [SET...]: rank 1 alone gets the `--set`s
PER_RANK = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    r = int(os.environ["RANK"])
    code = main(["sft", sys.argv[1], *[x for s in sys.argv[2:] if r == 1 for x in ("--set", s)]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")


@pytest.mark.parametrize("refusal", ["seq_len", "dataset"])
def test_one_rank_refused_at_start_stops_every_rank_with_its_error(tmp_path, tiny_llama_dir, refusal):
    (tmp_path / "chat.json").write_text('[{"instruction": "q", "output": "a"}, {"instruction": "r", "output": "b"}]')
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"init: {tiny_llama_dir}\nrun_dir: {tmp_path / 'run'}\nmax_steps: 2\nmicro_batch: 1\n"
                   "parallel: {mode: ddp}\ndata: {seq_len: 64, packing: false, datasets: [{name: c, path: [chat.json]}]}\n"
                   "log: {every: 1, tensorboard: false, progress: false}\n")
    # tiny_llama_dir's limit is 512 positions; data.datasets may name other paths per node (not compared)
    sets = {"seq_len": ["data.seq_len=1000"],
            "dataset": ["data.datasets=[{name: c, path: [node1/chat.json]}]"]}[refusal]
    cause = {"seq_len": "data.seq_len: 1000 > the model's max_position_embeddings 512", "dataset": "node1"}[refusal]
    wrapper = tmp_path / "per_rank.py"
    wrapper.write_text(PER_RANK)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(wrapper),
           str(cfg), *sets]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert "by peer" not in r.stderr, r.stderr[-3000:]  # gloo: "Connection closed by peer", "reset by peer"
    assert r.returncode == 0, r.stderr[-3000:]  # both ranks ended with exit code 2
    assert "rank 0 exit code 2" in r.stderr and "rank 1 exit code 2" in r.stderr, r.stderr[-3000:]
    errors = [x for x in r.stderr.splitlines() if x.startswith("steel: error:")]
    own = [x for x in errors if "stopped at startup" not in x]
    other = [x for x in errors if x.startswith("steel: error: rank 1 stopped at startup: ")]
    assert len(errors) == 2 and len(own) == 1 and len(other) == 1, errors
    assert cause in own[0], own
    assert other[0] == own[0].replace("steel: error: ", "steel: error: rank 1 stopped at startup: ", 1)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no step was taken
