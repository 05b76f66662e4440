"""bench/gpu_throughput.py keeps working: its --tiny CPU run measures every row in the planned order, checks
each precision's parameter dtypes, and rewrites its log and Markdown table after every row."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_throughput.py"
B = "eager (baseline)"


@pytest.fixture
def bench():
    """A fresh module per test: its clock (the time budget) starts at module load."""
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def logged(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "gpu_throughput.log").read_text().splitlines() if x.startswith("{")]


def test_tiny_run_writes_every_row(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert bench.main(["--tiny", "--models", "llama:1000,steel-1b"]) == 0
    rows = [r for r in logged(tmp_path) if "variant" in r]
    assert [r.get("error") or r.get("skipped") for r in rows] == [None] * len(rows)
    # Baselines first; then each model's DEFAULT_VARIANTS in order (llama:1000 stands for llama:32000),
    # in turn across models.
    assert [(r["model"], r["variant"]) for r in rows] == [
        ("llama", B), ("steel-1b", B),
        ("llama", "steel bf16 mb4"), ("steel-1b", "steel bf16 mb4"),
        ("llama", "steel bf16 mb8"), ("steel-1b", "steel bf16 mb8"),
        ("llama", "steel fp32-master mb4"), ("llama", "steel bf16 mb16 ac"),
    ]
    for r in rows:
        assert r["tokens_per_s"] > 0 and r["true_flops_per_token"] > 0
        # bf16 rows: bf16 parameters and no autocast (a default param_dtype: fp32 once cast them back);
        # everything else fp32 parameters under bf16 autocast; RoPE's inv_freq fp32 in every row.
        want = ("bfloat16", None) if r.get("precision") == "bf16" else ("float32", "bfloat16")
        assert (r["param_dtype"], r["autocast"], r["inv_freq_dtype"]) == (*want, "float32"), r["variant"]
        if r["variant"] != B:
            base = next(b for b in rows if b["model"] == r["model"] and b["variant"] == B)
            assert abs(r["speedup_vs_baseline"] - r["tokens_per_s"] / base["tokens_per_s"]) < 1e-3
    # The Llama shape as a Steel SwiGLU model has exactly the stock Llama's parameters, so the 6N FLOPs agree.
    assert len({r["six_n_flops_per_token"] for r in rows if r["model"] == "llama"}) == 1
    # every kernel was checked (on the CPU: the reference the model falls back to) by the child process
    checks = [r for r in logged(tmp_path) if "kernel_check" in r]
    assert sorted(c["kernel_check"] for c in checks) == sorted(bench.KERNEL_CHOICES)
    assert all(c["ok"] for c in checks)
    md = (tmp_path / "gpu_throughput.md").read_text()
    table = [x for x in md.splitlines() if x.startswith("| llama") or x.startswith("| steel-1b")]
    assert table == [x for r in rows for x in table if x.startswith(f"| {r['model']} | {r['vocab']} | {r['variant']} |")]
    assert (tmp_path / "gpu_throughput.log").read_text().endswith(md)  # the log closes with the table


def test_plan_runs_the_targets_first(bench):
    rows = bench.plan(["llama:32000", "llama:151936", "steel-1b"], tiny=False, variants=None)
    assert [v for *_, v in rows[:3]] == [None] * 3
    assert [(m, vocab, v[0]) for m, vocab, v in rows[3:6]] == [
        ("llama", 32000, "steel bf16 mb4"),
        ("llama", 151936, "steel bf16 mb4 ac"),  # the memory target at micro-batch 4
        ("steel-1b", 151936, "steel bf16 mb4"),
    ]
    # --tiny goes through the same table: llama:3001 stands for llama:151936
    assert bench.plan(["llama:3001"], tiny=True, variants=None)[1][2][0] == "steel bf16 mb4 ac"


def test_dtype_check_refuses_fp32_parameters_and_bf16_inv_freq(bench):
    from steel.model import build_model

    model = build_model(bench.steel_config("llama", "tiny", 1000, "none"))
    with pytest.raises(RuntimeError, match="parameters in"):
        bench.checked_dtypes(model, "steel bf16 mb4", torch.bfloat16)
    model.to(torch.bfloat16)  # the old path: buffers too
    with pytest.raises(RuntimeError, match="inv_freq"):
        bench.checked_dtypes(model, "steel bf16 mb4", torch.bfloat16)


def test_estimate_counts_a_cold_compile(bench):
    done = [{"model": "llama", "vocab": 32000, "variant": B, "mb": 4, "step_s": 0.2, "setup_s": 5.0}]
    mb8 = bench.VARIANTS["steel bf16 mb8"]
    assert bench.estimate_row_s("llama", 32000, mb8, done, 13, cold=False) == pytest.approx(5 + 16 * 0.4)
    assert bench.estimate_row_s("llama", 32000, mb8, done, 13, cold=True) >= 5 + bench.COLD_COMPILE_S
    done.append({"model": "llama", "vocab": 32000, "variant": "steel bf16 mb4", "mb": 4, "step_s": 0.1,
                 "setup_s": 5.0, "first_step_s": 300.0, "cold_compile": True})
    assert bench.estimate_row_s("llama", 32000, mb8, done, 13, cold=True) == pytest.approx(5 + 1.3 * 300 + 13 * 0.4)
    # a measured compile replaces the 90 s guess also when it is faster (x 1.3 margin, at least 10 s)
    done[-1]["first_step_s"] = 20.0
    assert bench.estimate_row_s("llama", 32000, mb8, done, 13, cold=True) == pytest.approx(5 + 26 + 13 * 0.4)
    done[-1]["first_step_s"] = 1.0
    assert bench.estimate_row_s("llama", 32000, mb8, done, 13, cold=True) == pytest.approx(5 + 10 + 13 * 0.4)


def test_row_that_would_overrun_is_skipped_and_the_table_kept(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(bench, "COLD_COMPILE_S", 10_000.0)  # any fresh compile overruns the budget
    monkeypatch.setattr(bench, "check_kernels", lambda keys, timeout_s: {k: {"ok": True} for k in keys})
    argv = ["--tiny", "--compile", "--models", "llama:1000", "--variants", "steel bf16 mb4,steel bf16 mb8"]
    assert bench.main(argv) == 0
    rows = [r for r in logged(tmp_path) if "variant" in r]
    assert "tokens_per_s" in rows[0] and [r["skipped"].split(" (")[0] for r in rows[1:]] == ["skipped: time budget"] * 2
    md = (tmp_path / "gpu_throughput.md").read_text()
    assert md.count("| skipped: time budget") == 2


def test_failed_baseline_and_kernel_check(bench, tmp_path, monkeypatch):
    def no_baseline(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(bench, "run_baseline", no_baseline)
    monkeypatch.setattr(
        bench, "check_kernels",
        lambda keys, timeout_s: {k: {"ok": k != "rope", "error": "device-side assert"} for k in keys},
    )
    assert bench.main(["--tiny", "--models", "llama:1000", "--variants", "steel bf16 mb4"]) == 0
    base, steel = [r for r in logged(tmp_path) if "variant" in r]
    assert "out of memory" in base["error"]
    # the Steel row runs with RoPE's reference, says so, and has no ratio: its baseline failed
    assert steel["kernels"]["rope"] == "torch" and steel["kernels"]["rmsnorm"] == "triton"
    assert "rope" in steel["note"] and "speedup_vs_baseline" not in steel
    line = next(x for x in (tmp_path / "gpu_throughput.md").read_text().splitlines() if "| steel bf16 mb4 |" in x)
    assert "| n/a (no baseline) |" in line and "| 1.0 |" not in line


def test_kernel_check_catches_a_wrong_kernel(bench, monkeypatch, capsys):
    from steel.kernels import silu_mul_ref

    # 10% off in the low-precision run only (the check compares it with the fp32 reference run)
    monkeypatch.setattr(bench, "silu_mul", lambda a, b, impl: silu_mul_ref(a, b) * (1.1 if a.dtype == torch.bfloat16 else 1))
    assert not bench.check_kernel("silu_mul", torch.device("cpu"))["ok"]
    assert bench.check_kernel("rmsnorm", torch.device("cpu"))["ok"]

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(bench, "rms_norm", broken)
    assert bench.kernel_check_child(["rmsnorm", "rope"]) == 1  # stops: the context may be broken
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert out == [{"kernel_check": "rmsnorm", "ok": False, "error": out[0]["error"]}] and "illegal" in out[0]["error"]


def test_kernel_checks_go_on_in_a_fresh_process_after_an_error(bench):
    # The child stops at the first kernel that raises (on a GPU its CUDA context may be broken then); the
    # kernels after it are checked by a new child, so one broken kernel does not fail the others.
    res = bench.check_kernels(["no-such-kernel", "silu_mul"], timeout_s=120)
    assert not res["no-such-kernel"]["ok"] and "no kernel check" in res["no-such-kernel"]["error"]
    assert res["silu_mul"]["ok"]
