"""Tolerance helpers shared by the kernel tests (a module of its own: several test folders have a
`conftest.py`, so `from conftest import ...` would resolve to whichever was imported first)."""

from __future__ import annotations

import torch

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
