"""Which implementation of a kernel runs: the Triton kernel or the pure-torch reference.

The rule, per call, from the `impl` argument every public op takes:
- `impl="torch"`: the `<op>_ref` reference, always (any device).
- `impl="triton"`: the Triton kernel. On a CPU tensor this needs Triton's interpreter, i.e.
  `TRITON_INTERPRET=1` set before `steel.kernels` is first imported (Triton decides at decoration time
  whether a `@triton.jit` function is compiled or interpreted); otherwise a `KernelUnavailable` error.
- `impl="auto"` (the default, what the model calls): CUDA tensor -> Triton (reference if Triton is not
  installed, or, with a warning, if the interpreter is on: it would run on the host); CPU tensor -> the
  reference, unless the interpreter is on AND `STEEL_KERNELS_INTERPRET=1`, in which case the Triton kernel runs in the interpreter (how the tests exercise the kernel code
  through the model). So a CPU run of a config with `kernels: all` silently and correctly uses the
  reference: this is the automatic CPU fallback.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # a CPU-only install without the `triton` extra: the references still work
    HAS_TRITON = False

# Read once, like Triton itself does when it decorates the kernels of this package.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def _interpreter_loops_run() -> bool:
    """True when Triton's interpreter runs a loop whose bound is a runtime value (a kernel argument)."""

    @triton.jit
    def _range_probe_kernel(OUT, n):
        for i in range(0, n):
            tl.store(OUT + i, i)

    out = torch.full((3,), -1, dtype=torch.int32)
    try:
        _range_probe_kernel[(1,)](out, 3)
    except Exception:  # any failure: the loop does not run here (repair_interpreter_loops tells which)
        return False
    return out.tolist() == [0, 1, 2]


def repair_interpreter_loops() -> bool:
    """Make Triton's interpreter run loops with runtime bounds where it cannot; True if it now can.

    NOTE: the interpreter holds every runtime scalar (a program id, an int argument) as a 1-element
    NumPy array, and Triton 3.6's (torch 2.11's CUDA wheels require it; the lent GPU machines have it)
    makes a Python int of one for `range` with `int(array)`, which NumPy >= 2.4 refuses ("only
    0-dimensional arrays can be converted to Python scalars"; triton-lang/triton#9171, fixed upstream by
    #9172, which our Triton 3.9 has). Every kernel with a runtime loop bound (the RMSNorm backward's rows,
    the cross-entropy kernel's vocabulary tiles) then failed in the interpreter (`make test`,
    STEEL_KERNELS_INTERPRET=1); compiled kernels never do this conversion. Where a probe kernel shows the
    defect, the interpreter's tensor patch gets #9172's `__index__` (squeeze, then int); the interpreter
    puts it on `tl.tensor` while a kernel runs and takes it off after, as its own. Process-wide: any
    other interpreted kernel gets the fix too.
    """
    if _interpreter_loops_run():
        return True
    from triton.runtime import interpreter

    patch = getattr(interpreter, "_patch_lang_tensor", None)
    if patch is None or getattr(patch, "_steel_repaired", False):
        return False

    def _patch_lang_tensor(tensor, *args, **kwargs):
        patch(tensor, *args, **kwargs)  # sets __index__ (among others) for this kernel run
        tensor.__index__ = lambda self: int(self.handle.data.squeeze())

    _patch_lang_tensor._steel_repaired = True
    interpreter._patch_lang_tensor = _patch_lang_tensor
    if _interpreter_loops_run():
        return True
    interpreter._patch_lang_tensor = patch  # not this defect: leave Triton as it was
    return False


if HAS_TRITON and INTERPRET:
    repair_interpreter_loops()

IMPLS = ("auto", "triton", "torch")


class KernelUnavailable(RuntimeError):
    """`impl="triton"` was asked for where the Triton kernel cannot run."""


def use_triton(x: torch.Tensor, impl: str) -> bool:
    """True when the Triton kernel should run for input `x` (see the module docstring)."""
    if impl == "torch":
        return False
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "triton":
        if not HAS_TRITON:
            raise KernelUnavailable(
                "impl='triton' but triton is not installed (pip install 'steel-llm[triton]')"
            )
        if x.device.type == "cpu" and not INTERPRET:
            raise KernelUnavailable(
                "impl='triton' on a CPU tensor needs TRITON_INTERPRET=1 set before steel.kernels is imported"
            )
        return True
    if not HAS_TRITON:
        return False
    if x.device.type == "cuda":
        if INTERPRET:
            _warn_interpret_on_cuda()
            return False
        return True
    return x.device.type == "cpu" and INTERPRET and os.environ.get("STEEL_KERNELS_INTERPRET", "0") == "1"


_warned_interpret = False


def _warn_interpret_on_cuda() -> None:
    global _warned_interpret
    if not _warned_interpret:
        _warned_interpret = True
        warnings.warn(
            "TRITON_INTERPRET=1 is set (left from a CPU test run?): Triton kernels would run in the interpreter "
            "on the host, far slower than the references; CUDA tensors use the torch references. Unset it "
            "before starting Python to run the compiled kernels.",
            stacklevel=3,
        )


def num_warps_for(block: int) -> int:
    """Warps for a row kernel whose row is `block` elements wide (the usual Triton/Liger table)."""
    if block >= 32768:
        return 32
    if block >= 8192:
        return 16
    if block >= 2048:
        return 8
    return 4


def num_programs(device: torch.device, rows: int) -> int:
    """Persistent-grid size for the reductions over rows (a few programs per SM; few in the interpreter)."""
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        return max(1, min(rows, 4 * sms))
    return max(1, min(rows, 4))


def launch_device(t: torch.Tensor) -> contextlib.AbstractContextManager:
    """Make t's GPU current for a Triton launch (Triton launches on the current device); no-op on CPU."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()
