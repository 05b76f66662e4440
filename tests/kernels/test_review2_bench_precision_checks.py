"""bench/gpu_throughput.py: a kernel whose on-device check fails only with the dtypes one precision hands it
is replaced by its reference only in that precision's rows. The fused CE's fp32 gradient accumulation
(fp32 weights, bf16 GEMMs: `_accumulate_mm`'s CUDA branch) is a path only the fp32-master rows take and no
CPU run ever took; failing there once cost the bf16 rows, which carry the issue's targets, the fused CE."""

from __future__ import annotations

import json

import torch


def test_the_check_cases_are_the_rows_precisions(bench):
    assert {v[3] for v in bench.STEEL_VARIANTS} == set(bench.PRECISIONS)
    assert all(tuple(cases) == bench.PRECISIONS for cases in bench.KERNEL_CHECK_CASES.values())


def test_a_case_that_raises_fails_only_its_precision(bench, monkeypatch, capsys):
    real = bench.fused_linear_cross_entropy

    def fp32_accumulation_broken(h, w, y, **kw):
        if w.dtype == torch.float32 and torch.is_autocast_enabled(h.device.type):
            raise TypeError("mm() got an unexpected keyword argument 'out_dtype'")
        return real(h, w, y, **kw)

    monkeypatch.setattr(bench, "fused_linear_cross_entropy", fp32_accumulation_broken)
    res = bench.check_kernel("cross_entropy", torch.device("cpu"))
    assert res["ok_by_case"] == {"bf16": True, "fp32-master": False} and not res["ok"]
    assert "fp32-master inputs" in res["error"] and "out_dtype" in res["error"]
    assert "in fp32_accumulation_broken" in res["traceback"]
    assert bench.case_ok(res, "bf16") and not bench.case_ok(res, "fp32-master")
    # the child stops after a kernel that raised (its CUDA context may be broken); the parent goes on anew
    assert bench.kernel_check_child(["cross_entropy", "silu_mul"]) == 1
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["kernel_check"] for r in out] == ["cross_entropy"]
    assert out[0]["ok_by_case"] == {"bf16": True, "fp32-master": False}


def test_a_kernel_failing_for_one_precision_is_kept_in_the_other(bench, tmp_path, monkeypatch):
    def check_kernels(keys, *a, **kw):
        res = {k: {"ok": True, "ok_by_case": {"bf16": True, "fp32-master": True}} for k in keys}
        res["cross_entropy"] = {"ok": False, "ok_by_case": {"bf16": True, "fp32-master": False},
                                "error": "cross_entropy on fp32-master inputs: TypeError"}
        return res

    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(bench, "check_kernels", check_kernels)
    argv = ["--tiny", "--models", "llama:1000", "--variants", "steel bf16 mb4,steel fp32-master mb4"]
    assert bench.main(argv) == 0
    log = [json.loads(x) for x in (tmp_path / "gpu_throughput.log").read_text().splitlines() if x.startswith("{")]
    rows = {r["variant"]: r for r in log if r.get("variant", "").startswith("steel")}
    bf16, fp32 = rows["steel bf16 mb4"], rows["steel fp32-master mb4"]
    assert bf16["kernels"]["cross_entropy"] == "fused" and "note" not in bf16
    assert fp32["kernels"]["cross_entropy"] == "torch" and fp32["kernels"]["rmsnorm"] == "triton"
    assert "torch reference for cross_entropy" in fp32["note"]
    md = (tmp_path / "gpu_throughput.md").read_text()
    assert "cross_entropy FAILED except for bf16 rows" in md
