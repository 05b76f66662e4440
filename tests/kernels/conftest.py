"""Kernel tests run the Triton kernels themselves: on CPU through Triton's interpreter.

TRITON_INTERPRET must be set before `steel.kernels` is imported (Triton picks interpreted vs compiled
at decoration time); `make test` sets it for the whole run, and this sets it when the kernel tests run
alone on a machine without CUDA. On a GPU machine run `pytest -m gpu tests/kernels` WITHOUT it, so the
CUDA tests exercise the compiled kernels. The `device` fixture gives "cpu" (interpreter) and "cuda"
(marked gpu, skipped without CUDA).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

if not torch.cuda.is_available():  # on a GPU machine the kernels must be compiled, not interpreted
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

from steel.kernels import dispatch


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request) -> str:
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    if request.param == "cuda" and dispatch.INTERPRET:
        pytest.skip("TRITON_INTERPRET=1 would interpret the kernels: run the GPU tests without it")
    if request.param == "cpu" and not dispatch.INTERPRET:
        pytest.skip("steel.kernels was imported without TRITON_INTERPRET=1; run with `make test`")
    if not dispatch.HAS_TRITON:
        pytest.skip("triton is not installed")
    return request.param



BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_throughput.py"


@pytest.fixture
def bench():
    """`bench/gpu_throughput.py` as a fresh module per test: its clock (the time budget) starts at module load."""
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
