"""Kernel tests run the Triton kernels themselves: on CPU through Triton's interpreter.

TRITON_INTERPRET must be set before `steel.kernels` is imported (Triton picks interpreted vs compiled
at decoration time); `make test` sets it for the whole run, and this sets it when the kernel tests run
alone on a machine without CUDA. On a GPU machine run `pytest -m gpu tests/kernels` WITHOUT it, so the
CUDA tests exercise the compiled kernels. The `device` fixture gives "cpu" (interpreter) and "cuda"
(marked gpu, skipped without CUDA).
"""

from __future__ import annotations

import os

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


BF16_EPS = 2.0**-8  # bf16 has 8 significand bits: relative spacing 2^-7, round-to-nearest error <= 2^-8


def bf16_rounding(device: str) -> float:
    """Relative error of ONE rounding of an fp32 value to bf16 by a Triton kernel on `device`.

    On GPUs Triton rounds to nearest even: 2^-8. Triton's CPU interpreter truncates instead
    (`triton/runtime/interpreter.py`, `cast_impl` passes no rounding mode to `_convert_float`), so
    there one rounding can cost a whole bf16 ulp: 2^-7.
    """
    return BF16_EPS if device == "cuda" else 2 * BF16_EPS


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    """|actual - expected| <= rel * max|expected| elementwise, compared in fp32.

    Errors of a rounding to a low-precision dtype scale with the magnitude of the values involved, so the
    bound is relative to the tensor's largest entry (per-element relative error is meaningless for
    entries near zero that come out of cancellations).
    """
    actual, expected = actual.float(), expected.float()
    assert actual.shape == expected.shape
    bound = rel * expected.abs().max().item()
    err = (actual - expected).abs().max().item()
    assert err <= bound, f"max abs error {err:.3g} > {bound:.3g} (rel {rel:.3g} of max |expected|)"
