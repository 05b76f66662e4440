"""bench/cpu_adamw.py names the implementation it compares fused AdamW with as the one torch really runs on
the CPU: it printed "foreach" (and README/optim.py quoted its figure as foreach), while torch's default for CPU
tensors is the per-tensor for-loop (foreach kernels are for GPUs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from torch.optim.optimizer import _default_to_fused_or_foreach

BENCH = Path(__file__).resolve().parents[2] / "bench" / "cpu_adamw.py"


def test_cpu_adamw_bench_names_torchs_cpu_default():
    fused, foreach = _default_to_fused_or_foreach([torch.nn.Parameter(torch.zeros(2))], False, False)
    assert not fused
    label = "foreach" if foreach else "for-loop"
    out = subprocess.run([sys.executable, str(BENCH), "--hidden", "64", "--layers", "1", "--vocab", "128",
                          "--runs", "1"], capture_output=True, text=True, timeout=120, check=True).stdout
    lines = [x for x in out.splitlines() if x.split(" AdamW:")[0] in ("foreach", "for-loop", "fused")]
    assert [x.split(" AdamW:")[0] for x in lines] == [label, "fused"], out
    assert f"max |fused - {label}| weight difference" in out, out
