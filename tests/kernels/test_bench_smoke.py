"""bench/gpu_throughput.py keeps working: its --tiny CPU run measures every row and writes its log."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_throughput.py"


def test_tiny_run_writes_every_row(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setenv("OUT", str(tmp_path))
    assert bench.main(["--tiny", "--models", "llama:1000,steel-1b"]) == 0
    lines = (tmp_path / "gpu_throughput.log").read_text().splitlines()
    rows = [json.loads(x) for x in lines if x.startswith("{") and "variant" in x]
    assert [r.get("error") for r in rows] == [None] * len(rows)
    # per model: the baseline, then each tiny Steel variant, with ratios against that baseline
    assert [(r["model"], r["variant"]) for r in rows] == [
        (m, v)
        for m in ("llama", "steel-1b")
        for v in ["eager (baseline)"] + [name for name, *_ in bench.TINY_VARIANTS]
    ]
    for r in rows:
        assert r["tokens_per_s"] > 0 and r["true_flops_per_token"] > 0
        if r["variant"] != "eager (baseline)":
            base = next(b for b in rows if b["model"] == r["model"] and b["variant"] == "eager (baseline)")
            assert abs(r["speedup_vs_baseline"] - r["tokens_per_s"] / base["tokens_per_s"]) < 1e-3
    # The Llama shape as a Steel SwiGLU model has exactly the stock Llama's parameters, so the 6N FLOPs agree.
    llama = [r for r in rows if r["model"] == "llama"]
    assert len({r["six_n_flops_per_token"] for r in llama}) == 1
    assert "| model | vocab | variant |" in lines[-len(rows) - 2]
