"""A refusal that one rank alone raises at `steel sft`'s start stops every rank with that error under torchrun.

Each rank reads its own config, init and data: when rank 1 alone was refused (a seq_len beyond its init's
context, a dataset file missing on its node), it printed the cause and rank 0 died in its next collective with
a gloo "Connection closed by peer" traceback (under NCCL: a hang until parallel.timeout_minutes). Two ranks on
CPU (gloo); each rank reports its exit code and exits 0 when it is the refusal's 2, so torchrun never stops a
rank before it has printed.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_fixtures import assert_stopped_by, rank_errors, torchrun_two  # noqa: E402

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
    assert_stopped_by(rank_errors(torchrun_two(PER_RANK, tmp_path, cfg, *sets, cwd=tmp_path), 2), 1, cause)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no step was taken
