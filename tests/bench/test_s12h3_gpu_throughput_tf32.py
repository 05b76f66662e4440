"""bench/gpu_throughput.py on a CUDA device leaves TF32 as torch has it (off): it turned TF32 on for the whole
process, so fp32 GEMMs (steel-1b's router in the bf16 rows) ran other code than in `steel train` and
hf_baseline.py (neither turns it on). CUDA is faked and the run stopped right after the device setup; the
header records the setting."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_throughput.py"


class Stop(Exception):
    pass


def test_cuda_run_leaves_tf32_off(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_throughput_s12h3", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def stop(device):
        assert device.type == "cuda"
        raise Stop

    monkeypatch.setattr(bench, "peak_flops", stop)  # the first call after the device setup
    before = torch.backends.cuda.matmul.allow_tf32  # (a cuBLAS setting object: monkeypatch cannot restore it)
    torch.backends.cuda.matmul.allow_tf32 = False  # torch's default
    try:
        with pytest.raises(Stop):
            bench.main(["--tiny", "--log", str(tmp_path / "b.log")])
        assert torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_header_records_tf32(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_throughput_s12h3b", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    seen = []
    monkeypatch.setattr(bench, "emit", lambda obj: seen.append(obj))
    monkeypatch.setattr(bench, "resolve_kernels", lambda k: (_ for _ in ()).throw(Stop()))  # after the header
    with pytest.raises(Stop):
        bench.main(["--tiny", "--log", str(tmp_path / "b.log")])
    assert seen[0]["tf32"] is torch.backends.cuda.matmul.allow_tf32
