"""A refusal that one rank alone raises while restoring `steel sft`'s data position at a resume stops every rank
with that error under torchrun. Each rank draws the epoch's row order with its own torch (`SftData._perm`): a node
whose torch draws another order was refused on that rank alone, and rank 0 died in its next collective with a gloo
"Connection closed by peer" traceback (under NCCL: a hang until parallel.timeout_minutes). Two ranks on CPU (gloo);
each rank exits 0 when its exit code is a refusal's 2, so torchrun never stops a rank before it has printed.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from steel.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_fixtures import assert_stopped_by, rank_errors, torchrun_two  # noqa: E402

# argv: CFG: a resume to step 2 where rank 1's torch draws another row order (its randperm reversed), as another
# torch version may
PER_RANK = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    from steel.sft import data
    r = int(os.environ["RANK"])
    if r == 1:
        perm = data.SftData._perm
        data.SftData._perm = lambda self, epoch: perm(self, epoch).flip(0)
    code = main(["sft", sys.argv[1], "--set", "max_steps=2"])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 3)
""")


def test_one_rank_refused_restoring_sft_data_at_resume_stops_every_rank(tmp_path, tiny_llama_dir, monkeypatch):
    (tmp_path / "chat.json").write_text(json.dumps([{"instruction": f"q{i}", "output": f"a{i}"} for i in range(8)]))
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"init: {tiny_llama_dir}\nrun_dir: {tmp_path / 'run'}\nmax_steps: 1\nmicro_batch: 1\n"
                   "parallel: {mode: ddp}\ndata: {seq_len: 64, packing: false, datasets: [{name: c, path: [chat.json]}]}\n"
                   "checkpoint: {every: 1}\nlog: {every: 1, tensorboard: false, progress: false}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["sft", str(cfg)]) == 0  # step 1's checkpoint, one process (a resume may change the world size)
    errors = rank_errors(torchrun_two(PER_RANK, tmp_path, cfg, cwd=tmp_path), 2)
    assert_stopped_by(errors, 1, "sft data: torch")
    assert "draws another row order for epoch 1" in errors[0]
    # refused before anything was trained or written: step 1's record and checkpoint only
    assert [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-1"]
