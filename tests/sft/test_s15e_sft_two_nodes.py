"""`steel sft` launched as the README launches several nodes (one torchrun agent per node, `--nnodes 2
--rdzv_backend c10d`; here two agents on this machine, gloo, each node's data a copy at its own path) trains
what one agent running both ranks trains, bit for bit."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from sft_runs import write_sft_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from train_fixtures import launch, torchrun_nodes  # noqa: E402

TIMING = ("tokens_per_s", "computed_per_s", "mfu", "mem_gb")


def _metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_two_nodes_train_what_one_agent_trains(tmp_path, tiny_tokenizer_dir):
    cfg = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=3, extra="parallel: {mode: ddp}\n")
    node1 = tmp_path / "node1"  # node 1's data.root: a copy of the records at another path
    node1.mkdir()
    shutil.copy(tmp_path / "chat.json", node1 / "chat.json")
    ref = tmp_path / "one-agent"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    r = launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "steel.cli", "sft", str(cfg), "--set", f"run_dir={ref}"], env=env, timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sft = ["-m", "steel.cli", "sft", cfg]
    nodes = torchrun_nodes([sft, [*sft, "--set", f"data.root={node1}"]]).wait()
    assert [x.returncode for x in nodes] == [0, 0], nodes[0].stderr[-3000:] + nodes[1].stderr[-3000:]
    out, = (tmp_path / "run" / "checkpoints").iterdir()
    assert out.name == "step-3"
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert (out / name).read_bytes() == (ref / "checkpoints" / "step-3" / name).read_bytes(), name
    assert _metrics(tmp_path / "run") == _metrics(ref) and len(_metrics(ref)) == 3
