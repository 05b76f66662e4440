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
    import triton  # noqa: F401

    HAS_TRITON = True
except ImportError:  # a CPU-only install without the `triton` extra: the references still work
    HAS_TRITON = False

# Read once, like Triton itself does when it decorates the kernels of this package.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

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
