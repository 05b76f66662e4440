"""Compile every Triton kernel of steel.kernels for sm_90 and sm_80 and check ptxas reports no spills.

Run by test_cuda_codegen.py in a subprocess WITHOUT TRITON_INTERPRET (the kernels must be JIT
functions, not interpreted ones). Needs no GPU: Triton's bundled LLVM and ptxas do the whole pipeline.
Prints "<n> compiled" at the end.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource

MODS = {
    m: importlib.import_module(f"steel.kernels.{m}") for m in ("rmsnorm", "rope", "silu_mul", "cross_entropy")
}
ROPE_INTS = (
    "sq_b",
    "sq_h",
    "sq_t",
    "sk_b",
    "sk_h",
    "sk_t",
    "sqo_b",
    "sqo_h",
    "sqo_t",
    "sko_b",
    "sko_h",
    "sko_t",
    "sc_b",
    "sc_t",
    "ss_b",
    "ss_t",
    "T",
    "HQ",
    "HK",
    "HALF",
)


def ptrs(dtype: str, *names: str) -> dict:
    return {n: f"*{dtype}" for n in names}


def ints(*names: str) -> dict:
    return {n: "i32" for n in names}


def consts(*names: str) -> dict:
    return {n: "constexpr" for n in names}


def compile_and_check(arch: int, mod: str, name: str, sig: dict, constexprs: dict, num_warps: int) -> None:
    src = ASTSource(fn=getattr(MODS[mod], name), signature=sig, constexprs=constexprs)
    k = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})
    assert len(k.asm["cubin"]) > 0
    # Register spills to local memory would slow these memory-bound kernels down: none allowed.
    gpu = re.search(r"\.target\s+(sm_\w+)", k.asm["ptx"]).group(1)  # sm_90a on Hopper
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
        f.write(k.asm["ptx"])
        f.flush()
        info = subprocess.run(
            [get_ptxas(arch).path, "--gpu-name", gpu, "-v", f.name, "-o", "/dev/null"],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
    spills = [int(x) for x in re.findall(r"(\d+) bytes spill stores", info)]
    assert spills and max(spills) == 0, f"{name} {constexprs} sm_{arch}: {info}"


def main() -> None:
    kernel = MODS["rmsnorm"]._rms_norm_fwd_kernel
    assert type(kernel).__name__ == "JITFunction", f"interpreted, not compiled: {type(kernel)}"
    n = 0
    for arch in (90, 80):
        for dt in ("bf16", "fp32"):
            # Production block sizes: hidden 2048, 32 q / 4 kv heads of 64, vocabulary tiles of 16384.
            cases = [
                (
                    "rmsnorm",
                    "_rms_norm_fwd_kernel",
                    {
                        **ptrs(dt, "X", "W", "Y"),
                        "RSTD": "*fp32",
                        **ints("stride_x", "stride_y", "C"),
                        "eps": "fp32",
                        **consts("BLOCK_C"),
                    },
                    {"BLOCK_C": 2048},
                    8,
                ),
                (
                    "rmsnorm",
                    "_rms_norm_bwd_kernel",
                    {
                        **ptrs(dt, "DY", "X", "W"),
                        "RSTD": "*fp32",
                        **ptrs(dt, "DX"),
                        "DW_PART": "*fp32",
                        **ints("stride_dy", "stride_x", "stride_dx", "M", "C", "rows_per_program"),
                        **consts("BLOCK_C"),
                    },
                    {"BLOCK_C": 2048},
                    8,
                ),
                (
                    "silu_mul",
                    "_silu_mul_fwd_kernel",
                    {**ptrs(dt, "G", "U", "Y"), **ints("n"), **consts("BLOCK")},
                    {"BLOCK": 1024},
                    4,
                ),
                (
                    "silu_mul",
                    "_silu_mul_bwd_kernel",
                    {**ptrs(dt, "DY", "G", "U", "DG", "DU"), **ints("n"), **consts("BLOCK")},
                    {"BLOCK": 1024},
                    4,
                ),
            ]
            for backward in (False, True):
                cases.append(
                    (
                        "rope",
                        "_rope_kernel",
                        {
                            **ptrs(dt, "Q", "K", "COS", "SIN", "QO", "KO"),
                            **ints(*ROPE_INTS),
                            **consts("BACKWARD", "BLOCK_HQ", "BLOCK_HK", "BLOCK_D"),
                        },
                        {"BACKWARD": backward, "BLOCK_HQ": 32, "BLOCK_HK": 4, "BLOCK_D": 32},
                        4,
                    )
                )
            for smoothing in (False, True):
                cases.append(
                    (
                        "cross_entropy",
                        "_ce_grad_kernel",
                        {
                            **ptrs(dt, "LOGITS"),
                            **ints("stride_l"),
                            "LABELS": "*i64",
                            "LOSS": "*fp32",
                            "DENOM": "*fp32",
                            **ints("V", "ignore_index"),
                            "smoothing": "fp32",
                            **consts("HAS_SMOOTHING", "BLOCK_V"),
                        },
                        {"HAS_SMOOTHING": smoothing, "BLOCK_V": 16384},
                        16,
                    )
                )
            for case in cases:
                compile_and_check(arch, *case)
                n += 1
    print(n, "compiled")


if __name__ == "__main__":
    main()
