"""bench/gpu_throughput.py keeps working: its --tiny CPU run measures every row in the planned order, checks
each precision's parameter dtypes, and rewrites its log and Markdown table after every row. It gets one
10-minute run on a GPU, so what goes wrong there must cost little and be readable in its log: these tests
fake the failures (a hanging kernel check, a row failing inside the compiled model, an OOM)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

B = "eager (baseline)"



def logged(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "gpu_throughput.log").read_text().splitlines() if x.startswith("{")]


def test_tiny_run_writes_every_row(bench, tmp_path, monkeypatch):
    import steel.kernels

    # What the rows hand each kernel: (config key, dtypes of the floating inputs, autocast on)
    calls = set()
    for key, fn_name in steel.kernels.KERNEL_NAMES.items():
        def recorded(*a, _fn=getattr(steel.kernels, fn_name), _key=key, **kw):
            floats = tuple(t.dtype for t in a if isinstance(t, torch.Tensor) and t.is_floating_point())
            calls.add((_key, floats, torch.is_autocast_enabled(a[0].device.type)))
            return _fn(*a, **kw)

        monkeypatch.setattr(steel.kernels, fn_name, recorded)  # the model looks its kernels up when built
    monkeypatch.setenv("OUT", str(tmp_path))
    assert bench.main(["--tiny", "--models", "llama:1000,steel-1b"]) == 0
    # the kernel check tries each op with exactly the dtypes the bf16 and fp32-master rows give it
    assert calls == {(k, dts, ac) for k, cases in bench.KERNEL_CHECK_CASES.items() for dts, ac in cases.values()}
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
        # MFU against the fixed peak is in every row, whatever the device name (here none: cpu)
        assert r["mfu"] is None and r["mfu_6n_989t"] == round(r["tokens_per_s"] * r["six_n_flops_per_token"] / 989.4e12, 4)
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
    assert all(c["ok"] and set(c["max_rel_err_by_case"]) == {"bf16", "fp32-master"} for c in checks)
    md = (tmp_path / "gpu_throughput.md").read_text()
    assert "MFU 6N @989.4T" in md and "against no peak (none known for device 'cpu')" in md
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
    monkeypatch.setattr(bench, "check_kernels", lambda keys, *a, **kw: {k: {"ok": True} for k in keys})
    argv = ["--tiny", "--compile", "--models", "llama:1000", "--variants", "steel bf16 mb4,steel bf16 mb8"]
    assert bench.main(argv) == 0
    rows = [r for r in logged(tmp_path) if "variant" in r]
    assert "tokens_per_s" in rows[0] and [r["skipped"].split(" (")[0] for r in rows[1:]] == ["skipped: time budget"] * 2
    md = (tmp_path / "gpu_throughput.md").read_text()
    assert md.count("| skipped: time budget") == 2


def test_failed_baseline_and_kernel_check(bench, tmp_path, monkeypatch):
    def allocate_activations():
        raise RuntimeError("CUDA out of memory. " + "Tried to allocate 2.00 GiB; " * 40 + "END")

    def no_baseline(*args, **kwargs):
        allocate_activations()

    md_at_first_steel_row = []

    def run_steel(*args, **kwargs):
        md_at_first_steel_row.append((tmp_path / "gpu_throughput.md").read_text())
        return run_steel.orig(*args, **kwargs)

    run_steel.orig = bench.run_steel
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(bench, "run_baseline", no_baseline)
    monkeypatch.setattr(bench, "run_steel", run_steel)
    monkeypatch.setattr(
        bench, "check_kernels",
        lambda keys, *a, **kw: {k: {"ok": k != "rope", "error": "device-side assert"} for k in keys},
    )
    assert bench.main(["--tiny", "--models", "llama:1000", "--variants", "steel bf16 mb4"]) == 0
    base, steel = [r for r in logged(tmp_path) if "variant" in r]
    assert "out of memory" in base["error"]
    # the log has the whole traceback; the table's cell is short
    assert "allocate_activations" in base["traceback"] and "END" in base["traceback"]
    base_line = next(x for x in (tmp_path / "gpu_throughput.md").read_text().splitlines() if "| eager" in x)
    assert "out of memory" in base_line and "END" not in base_line and len(base_line) < 400
    # the table says how the checks went before the next row runs, not "not run yet"
    assert "Kernel checks: rmsnorm ok" in md_at_first_steel_row[0] and "rope FAILED" in md_at_first_steel_row[0]
    # the Steel row runs with RoPE's reference, says so, and has no ratio: its baseline failed
    assert steel["kernels"]["rope"] == "torch" and steel["kernels"]["rmsnorm"] == "triton"
    assert "rope" in steel["note"] and "speedup_vs_baseline" not in steel
    line = next(x for x in (tmp_path / "gpu_throughput.md").read_text().splitlines() if "| steel bf16 mb4 |" in x)
    assert "| n/a (no baseline) |" in line and "| 1.0 |" not in line


def test_kernel_check_catches_a_wrong_kernel(bench, monkeypatch, capsys):
    from steel.kernels import rms_norm_ref, silu_mul_ref

    # 10% off in the low-precision run only (the check compares it with the fp32 reference run)
    monkeypatch.setattr(bench, "silu_mul", lambda a, b, impl: silu_mul_ref(a, b) * (1.1 if a.dtype == torch.bfloat16 else 1))
    assert not bench.check_kernel("silu_mul", torch.device("cpu"))["ok"]
    assert bench.check_kernel("rmsnorm", torch.device("cpu"))["ok"]
    # 10% off only as the fp32-master rows call it: fp32 residual and weight under bf16 autocast
    monkeypatch.setattr(bench, "rms_norm", lambda x, w, eps, impl: rms_norm_ref(x, w, eps) * (
        1.1 if x.dtype == torch.float32 and torch.is_autocast_enabled("cpu") else 1))
    res = bench.check_kernel("rmsnorm", torch.device("cpu"))
    assert not res["ok"] and res["max_rel_err_by_case"]["bf16"] < 0.01 < res["max_rel_err_by_case"]["fp32-master"]

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(bench, "rms_norm", broken)
    assert bench.kernel_check_child(["rmsnorm", "rope"]) == 1  # stops: the context may be broken
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["kernel_check"], r["ok"]) for r in out] == [("rmsnorm", False)] and "illegal" in out[0]["error"]
    assert "def broken" not in out[0]["traceback"] and "in broken" in out[0]["traceback"]  # the whole traceback


def test_kernel_checks_go_on_in_a_fresh_process_after_an_error(bench):
    # The child stops at the first kernel that raises (on a GPU its CUDA context may be broken then); the
    # kernels after it are checked by a new child, so one broken kernel does not fail the others.
    res = bench.check_kernels(["no-such-kernel", "silu_mul"], timeout_s=120)
    assert not res["no-such-kernel"]["ok"] and "no kernel check" in res["no-such-kernel"]["error"]
    assert res["silu_mul"]["ok"]


def fake_child(monkeypatch, bench, script: str) -> None:
    """The kernel-check child replaced by `script` (Python), which gets the kernel keys in sys.argv[1]."""
    monkeypatch.setattr(bench, "kernel_check_cmd", lambda keys: [sys.executable, "-c", script, ",".join(keys)])


def test_a_hanging_kernel_check_costs_only_that_kernel(bench, monkeypatch):
    # "b" hangs, "c" takes a second. Each gets its own 2 s (not a share of one deadline: then "c", in a fresh
    # child after the hang, would get a second, too little to start and check it).
    fake_child(monkeypatch, bench, """
import json, sys, time
for key in sys.argv[1].split(","):
    time.sleep({"a": 0, "b": 600}.get(key, 1.0))
    print(json.dumps({"kernel_check": key, "ok": True}), flush=True)
""")
    res = bench.check_kernels(["a", "b", "c"], timeout_s=2.0)
    assert res["a"]["ok"] and res["c"]["ok"]
    assert not res["b"]["ok"] and "no result in 2 s" in res["b"]["error"]


def test_a_failed_kernel_check_keeps_the_child_stderr(bench, monkeypatch):
    fake_child(monkeypatch, bench, "import sys; sys.stderr.write('START' + 'x' * 5000 + 'END'); sys.exit(3)")
    res = bench.check_kernels(["a"], timeout_s=30.0)
    assert not res["a"]["ok"] and "exit 3" in res["a"]["error"]
    assert res["a"]["stderr"] == "START" + "x" * 5000 + "END"


def test_a_child_hanging_after_a_failed_check_costs_no_other_kernel(bench, monkeypatch):
    # "a" fails and the child then hangs on its way out (a broken CUDA context can): it is killed after
    # KERNEL_CHECK_EXIT_S, and "b" is checked by a fresh child, not failed for the first child's hang.
    monkeypatch.setattr(bench, "KERNEL_CHECK_EXIT_S", 1.0)
    fake_child(monkeypatch, bench, """
import json, sys, time
keys = sys.argv[1].split(",")
for key in keys:
    print(json.dumps({"kernel_check": key, "ok": key != "a", "error": "illegal address"}), flush=True)
    if key == "a":
        sys.stderr.write("teardown of a\\n"); sys.stderr.flush()
        time.sleep(600)
""")
    res = bench.check_kernels(["a", "b"], timeout_s=20.0)
    assert not res["a"]["ok"] and res["a"]["error"] == "illegal address" and "teardown of a" in res["a"]["stderr"]
    assert res["b"]["ok"]


def test_a_child_that_closes_its_output_and_hangs_is_killed(bench, monkeypatch):
    monkeypatch.setattr(bench, "KERNEL_CHECK_EXIT_S", 1.0)
    fake_child(monkeypatch, bench, "import os, time; os.close(1); time.sleep(600)")
    res = bench.check_kernels(["a"], timeout_s=60.0)
    assert not res["a"]["ok"] and "stdout closed, no exit in 1 s: killed" in res["a"]["error"]


def test_two_hanging_kernel_checks_in_a_row_stop_the_checks(bench, monkeypatch):
    # Two hangs in a row: the GPU is stuck, most likely; the rest are not checked, not given 60 s each.
    fake_child(monkeypatch, bench, """
import json, sys, time
for key in sys.argv[1].split(","):
    time.sleep({"a": 0, "d": 0}.get(key, 600))
    print(json.dumps({"kernel_check": key, "ok": True}), flush=True)
""")
    res = bench.check_kernels(["a", "b", "c", "d"], timeout_s=2.0)
    assert res["a"]["ok"] and "no result in 2 s" in res["b"]["error"] and "no result in 2 s" in res["c"]["error"]
    assert res["d"] == {"ok": False, "error": "not checked: 2 kernel checks in a row hung"}


def test_the_kernel_checks_together_have_a_cap(bench, monkeypatch):
    # Every check takes 1.5 s, well inside its own timeout; the checks together stop at KERNEL_CHECKS_MAX_S
    # from their start, not at the whole run's budget.
    monkeypatch.setattr(bench, "KERNEL_CHECKS_MAX_S", 2.5)
    fake_child(monkeypatch, bench, """
import json, sys, time
for key in sys.argv[1].split(","):
    time.sleep(1.5)
    print(json.dumps({"kernel_check": key, "ok": True}), flush=True)
""")
    checks, line = bench.run_kernel_checks(["a", "b", "c"], budget_s=1e6)
    # "b" is cut at the cap (its limit: what is left of it), "c" is not started
    assert checks["a"]["ok"] and "the check process gave no result (no result in" in checks["b"]["error"]
    assert checks["c"]["error"].startswith("not checked: time budget") and "c FAILED" in line


def test_cublas_alloc_failure_counts_as_out_of_memory(bench):
    assert bench.is_oom(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))
    assert bench.is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not bench.is_oom(RuntimeError("CUDA error: an illegal memory access was encountered"))


def test_kernel_checks_that_raise_fail_the_checks_not_the_run(bench, tmp_path, monkeypatch):
    def check_kernels(*args, **kwargs):
        raise ValueError("a bug in the checking")

    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(bench, "check_kernels", check_kernels)
    assert bench.main(["--tiny", "--models", "llama:1000", "--variants", "steel bf16 mb4"]) == 0
    log = logged(tmp_path)
    assert "in check_kernels" in next(r for r in log if "kernel_checks_error" in r)["traceback"]
    steel = next(r for r in log if r.get("variant") == "steel bf16 mb4")
    assert "tokens_per_s" in steel and set(steel["kernels"].values()) == {"torch"}  # every kernel's reference


def fake_steel(bench, fails):
    """run_steel that raises `fails(compile_, kernels, model_name)` (an exception or None), else runs the row
    uncompiled (a CPU compile is slow); the calls' (variant, compile, fused kernels) in `.calls`, with the
    model's name first where `.with_model` is set."""
    orig = bench.run_steel

    def run_steel(model_name, shape, vocab, variant, seq, args, device, kernels, compile_):
        call = (variant[0], compile_, sorted(k for k, v in kernels.items() if v != "torch"))
        run_steel.calls.append((model_name, *call) if run_steel.with_model else call)
        if (e := fails(compile_, kernels, model_name)) is not None:
            raise e
        return orig(model_name, shape, vocab, variant, seq, args, device, kernels, False)

    run_steel.calls, run_steel.with_model = [], False
    return run_steel


TWO_ROWS = ["--tiny", "--compile", "--models", "llama:1000", "--variants", "steel bf16 mb4,steel bf16 mb8"]
ALL = ["cross_entropy", "rmsnorm", "rope", "silu_mul"]


def test_a_row_failing_in_the_compiled_model_falls_back_for_the_later_rows(bench, tmp_path, monkeypatch):
    # fails with compile on, and (e.g. a kernel's bad output dtype) also eagerly while any kernel is on
    run_steel = fake_steel(bench, lambda c, k, _: RuntimeError("fake tensor dtype mismatch") if c or
                           set(k.values()) != {"torch"} else None)
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(bench, "run_steel", run_steel)
    monkeypatch.setattr(bench, "check_kernels", lambda keys, *a, **kw: {k: {"ok": True} for k in keys})
    assert bench.main(TWO_ROWS) == 0
    assert run_steel.calls == [
        ("steel bf16 mb4", True, ALL), ("steel bf16 mb4", False, ALL), ("steel bf16 mb4", False, []),
        ("steel bf16 mb8", False, []),  # the working fallback, straight away
    ]
    rows = [r for r in logged(tmp_path) if r.get("variant", "").startswith("steel")]
    assert ["tokens_per_s" in r for r in rows] == [False, False, True, True]
    assert "mismatch" in rows[0]["error"] and rows[1]["fallback"] == "compile off"
    for r in rows[2:]:
        assert r["fallback"] == "compile off, kernels none" and "fallback: compile off, kernels none" in r["note"]
    md = (tmp_path / "gpu_throughput.md").read_text()
    assert md.count("fallback: compile off, kernels none, since llama:1000 steel bf16 mb4 failed") == 2


def test_an_oom_is_no_reason_to_fall_back(bench, tmp_path, monkeypatch):
    run_steel = fake_steel(bench, lambda c, k, _: torch.cuda.OutOfMemoryError("CUDA out of memory")
                           if len(run_steel.calls) == 1 else None)
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(bench, "run_steel", run_steel)
    monkeypatch.setattr(bench, "check_kernels", lambda keys, *a, **kw: {k: {"ok": True} for k in keys})
    assert bench.main(TWO_ROWS) == 0
    assert run_steel.calls == [("steel bf16 mb4", True, ALL), ("steel bf16 mb8", True, ALL)]
    rows = [r for r in logged(tmp_path) if r.get("variant", "").startswith("steel")]
    assert "out of memory" in rows[0]["error"] and "fallback" not in rows[1]


def test_a_fallback_is_kept_to_the_model_and_precision_that_failed(bench, tmp_path, monkeypatch):
    # steel-1b's blocks fail to compile: its rows fall back to compile off, each precision finding that out
    # once (a custom op's dtypes differ between them); the Llama rows keep compile on.
    run_steel = fake_steel(bench, lambda c, k, model: RuntimeError("inductor: soft MoE") if c and model == "steel-1b"
                           else None)
    run_steel.with_model = True
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(bench, "run_steel", run_steel)
    monkeypatch.setattr(bench, "check_kernels", lambda keys, *a, **kw: {k: {"ok": True} for k in keys})
    assert bench.main(["--tiny", "--compile", "--models", "llama:1000,steel-1b",
                       "--variants", "steel bf16 mb4,steel bf16 mb8,steel fp32-master mb4"]) == 0
    assert run_steel.calls == [
        ("llama", "steel bf16 mb4", True, ALL),
        ("steel-1b", "steel bf16 mb4", True, ALL), ("steel-1b", "steel bf16 mb4", False, ALL),
        ("llama", "steel bf16 mb8", True, ALL),
        ("steel-1b", "steel bf16 mb8", False, ALL),  # bf16's fallback, straight away
        ("llama", "steel fp32-master mb4", True, ALL),
        ("steel-1b", "steel fp32-master mb4", True, ALL), ("steel-1b", "steel fp32-master mb4", False, ALL),
    ]
    rows = [r for r in logged(tmp_path) if r.get("variant", "").startswith("steel") and "tokens_per_s" in r]
    assert all("fallback" not in r and "note" not in r for r in rows if r["model"] == "llama")
    assert [r["fallback"] for r in rows if r["model"] == "steel-1b"] == ["compile off"] * 3
