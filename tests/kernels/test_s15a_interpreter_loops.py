"""Kernels with a runtime loop bound run in Triton's interpreter even where it cannot turn a runtime
scalar into a Python int (Triton 3.6 with NumPy >= 2.4, the pair torch 2.11's wheels install: every
RMSNorm-backward and cross-entropy test failed with 'only 0-dimensional arrays can be converted to
Python scalars'). The defect is reproduced here on any Triton by the interpreter's own patch made strict."""

from __future__ import annotations

import operator

import pytest
import torch

from steel.kernels import dispatch, rms_norm, rms_norm_ref

pytestmark = pytest.mark.skipif(
    not (dispatch.HAS_TRITON and dispatch.INTERPRET),
    reason="needs triton and TRITON_INTERPRET=1 set before steel.kernels is imported (`make test`)",
)


def _with_index(monkeypatch, index):
    """The interpreter's tensor patch, then `index` as the runtime scalar's `__index__` (what `range` calls)."""
    from triton.runtime import interpreter

    current = interpreter._patch_lang_tensor

    def _patch_lang_tensor(tensor, *args, **kwargs):
        current(tensor, *args, **kwargs)
        tensor.__index__ = index

    monkeypatch.setattr(interpreter, "_patch_lang_tensor", _patch_lang_tensor)


def _strict(self):
    # Triton 3.6's `int(self.handle.data)` under NumPy >= 2.4: a 1-element 1-d array is not an int. operator.index
    # refuses it on every NumPy, so the defect shows whichever NumPy runs the test.
    return operator.index(self.handle.data)


def test_rms_norm_backward_runs_in_an_interpreter_that_refuses_1_element_arrays(monkeypatch):
    import triton.language as tl

    _with_index(monkeypatch, _strict)
    assert not dispatch._interpreter_loops_run()  # the defect is there
    index_before = tl.tensor.__dict__.get("__index__")
    assert dispatch.repair_interpreter_loops()
    from triton.runtime import interpreter

    if hasattr(interpreter, "_LangPatchScope"):  # an interpreter that takes its patches off after a kernel run
        assert tl.tensor.__dict__.get("__index__") is index_before  # only inside a kernel run, as Triton's own
    # (Triton 3.2's, which torch 2.6 pins, leaves its patch of tl.tensor on after a run, and so leaves ours.)

    g = torch.Generator().manual_seed(0)
    # 37 rows over 4 programs: each program loops over 10 rows (the last over 7), bounds from its program id
    x = torch.randn(37, 67, generator=g, requires_grad=True)
    w = (1.0 + 0.5 * torch.randn(67, generator=g)).requires_grad_()
    dy = torch.randn(37, 67, generator=g)
    dx, dw = torch.autograd.grad(rms_norm(x, w, 1e-6, impl="triton"), (x, w), dy)
    dxr, dwr = torch.autograd.grad(rms_norm_ref(x, w, 1e-6), (x, w), dy)
    # NOTE: fp32 both; only the summation order differs (67 terms per row of dx, 37 rows for dw):
    # a few fp32 ulps of the largest terms.
    torch.testing.assert_close(dx, dxr, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw, dwr, rtol=1e-5, atol=1e-5)


def test_another_interpreter_failure_leaves_triton_as_it_was(monkeypatch):
    from triton.runtime import interpreter

    def _broken(tensor, *args, **kwargs):  # no kernel runs at all: not the defect the squeeze repairs
        raise RuntimeError("interpreter broken otherwise")

    monkeypatch.setattr(interpreter, "_patch_lang_tensor", _broken)
    assert not dispatch.repair_interpreter_loops()
    assert interpreter._patch_lang_tensor is _broken
