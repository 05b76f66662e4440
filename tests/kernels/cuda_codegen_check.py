"""Compile every Triton kernel of steel.kernels for sm_90 and sm_80 exactly as bench/gpu_throughput.py launches
them on the GPU, and check ptxas reports no spills. Needs no GPU: Triton's bundled LLVM and ptxas do the whole
pipeline.

The launches are recorded, not written out by hand: each op's launcher (the body of its custom op, which
allocates the outputs, picks block sizes and warps, and launches) runs on meta tensors of the benchmark's
shapes, layouts and dtypes with every kernel replaced by a recorder; Triton's own binder then specializes
the recorded arguments as a launch on the GPU does (pointers and ints divisible by 16 get the divisibility
hint, an int equal to 1 becomes a constant, ...), so what is compiled is what the GPU would compile. A
hand-written signature without those hints compiled other code (no vectorised loads) than the GPU runs.

Recorded: the benchmark's Steel rows (the Llama 1.1B shape with vocab 32000 and 151936, steel-1b; micro-batches
4, 8 and 16; the dtypes of both precisions from the benchmark's KERNEL_CHECK_CASES, which its smoke test ties
to what the rows pass) and the benchmark's own kernel checks (odd shapes: other specializations). Every
launch is also checked against the CUDA grid limits and, where a kernel indexes in int32, against 2^31
elements.

Run by test_cuda_codegen.py in a subprocess WITHOUT TRITON_INTERPRET (the kernels must be JIT functions, not
interpreted ones). Prints one line per compiled kernel, "compiled <arch> <kernel>", then "<n> compiled".
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import re
import subprocess
import tempfile
from pathlib import Path

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import get_ptxas
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import JITFunction, create_function_from_signature

ROOT = Path(__file__).resolve().parents[2]
MODS = {
    m: importlib.import_module(f"steel.kernels.{m}") for m in ("rmsnorm", "rope", "silu_mul", "cross_entropy")
}
H100_SMS = 132  # the persistent grid of the RMSNorm backward: 4 programs per SM
SEQ = 2048
MICRO_BATCHES = (4, 8, 16)
GRID_LIMITS = (2**31 - 1, 65535, 65535)
# Kernels whose offsets are int32 arithmetic (the others index rows in int64): every tensor they get must
# stay below 2^31 elements (rope's launcher refuses larger ones).
INT32_OFFSETS = {"_rope_kernel"}


def load_bench():
    spec = importlib.util.spec_from_file_location("gpu_throughput", ROOT / "bench" / "gpu_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


class Recorder:
    """Stands in for a JITFunction: `kernel[grid](*args, **kwargs)` records the launch instead of running it."""

    def __init__(self, fn: JITFunction, launches: list) -> None:
        self.fn, self.launches = fn, launches

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launches.append((self.fn, tuple(grid), args, kwargs))


@contextlib.contextmanager
def recording():
    """Kernels replaced by recorders; the launchers made to run on meta tensors (no autocast for the meta
    device; the RMSNorm backward's grid sized for an H100, as on the GPU)."""
    launches: list = []
    saved = []
    for mod in MODS.values():
        for name, obj in list(vars(mod).items()):
            if isinstance(obj, JITFunction):
                saved.append((mod, name, obj))
                setattr(mod, name, Recorder(obj, launches))
    rms_programs = MODS["rmsnorm"].num_programs
    autocast = torch.autocast
    MODS["rmsnorm"].num_programs = lambda device, rows: max(1, min(rows, 4 * H100_SMS))
    torch.autocast = lambda device_type, *a, **kw: (
        contextlib.nullcontext() if device_type == "meta" else autocast(device_type, *a, **kw)
    )
    try:
        yield launches
    finally:
        torch.autocast = autocast
        MODS["rmsnorm"].num_programs = rms_programs
        for mod, name, obj in saved:
            setattr(mod, name, obj)


def meta(shape, dtype, layout=None) -> torch.Tensor:
    """A meta tensor; layout "bthd": (B, H, T, D) viewed from a (B, T, H, D) projection, as attention makes q, k."""
    if layout == "bthd":
        b, h, t, d = shape
        return torch.empty(b, t, h, d, device="meta", dtype=dtype).transpose(1, 2)
    return torch.empty(shape, device="meta", dtype=dtype)


def launch_ops(bench, key: str, dtypes, autocast: bool, shapes: dict) -> None:
    """Run `key`'s launchers, forward and backward, on meta inputs of `shapes` and `dtypes` (the dtypes of
    KERNEL_CHECK_CASES: the inputs that get gradients, then the constants)."""
    if key == "rmsnorm":
        fwd, bwd = MODS["rmsnorm"]._rms_norm_fwd._init_fn, MODS["rmsnorm"]._rms_norm_bwd._init_fn
        x, w = meta(shapes["x"], dtypes[0]), meta(shapes["x"][-1:], dtypes[1])
        y, rstd = fwd(x, w, 1e-6)
        bwd(meta(y.shape, y.dtype), x, w, rstd)
    elif key == "rope":
        op = MODS["rope"]._rope._init_fn
        for layout in ("bthd", None):  # eager attention's views; a compiled block may hand contiguous ones
            q, k = meta(shapes["q"], dtypes[0], layout), meta(shapes["k"], dtypes[1], layout)
            cos, sin = meta(shapes["cos"], dtypes[2]), meta(shapes["cos"], dtypes[3])
            qo, ko = op(q, k, cos, sin, False)
            op(meta(qo.shape, qo.dtype, layout), meta(ko.shape, ko.dtype, layout), cos, sin, True)
    elif key == "silu_mul":
        for shape in shapes["gate"]:
            g, u = meta(shape, dtypes[0]), meta(shape, dtypes[1])
            y = MODS["silu_mul"]._silu_mul_fwd._init_fn(g, u)
            MODS["silu_mul"]._silu_mul_bwd._init_fn(meta(y.shape, y.dtype), g, u)
    elif key == "cross_entropy":
        ce = MODS["cross_entropy"]
        h, w = meta(shapes["hidden"], dtypes[0]), meta(shapes["weight"], dtypes[1])
        compute = torch.bfloat16 if autocast else torch.promote_types(h.dtype, w.dtype)
        n, v = h.shape[0], w.shape[0]
        chunk = shapes.get("chunk_size") or ce.default_chunk_size(n, v)
        ce._flce_fwd._init_fn(h, w, meta((n,), torch.int64), None, -100, 0.0, compute, chunk, True, False)
    else:
        raise ValueError(f"no launcher for {key!r}")


def row_shapes(cfg, mb: int) -> dict:
    """The shapes a Steel row of `cfg` at micro-batch `mb` hands each op."""
    c, t = cfg.hidden_size, SEQ
    if cfg.ffn_type == "swiglu":
        gates = [(mb, t, cfg.intermediate_size)]
    else:  # soft MoE of SENet experts: each expert gets its slots, (B, slots, C), and gates twice
        assert cfg.expert_type == "senet" and cfg.ffn_type.startswith("soft_moe"), cfg.ffn_type
        gates = [(mb, cfg.slots_per_expert, cfg.intermediate_size // cfg.mlp_div_ratio),
                 (mb, cfg.slots_per_expert, c)]
    return {
        "x": (mb, t, c),
        "q": (mb, cfg.num_attention_heads, t, cfg.head_dim),
        "k": (mb, cfg.num_key_value_heads, t, cfg.head_dim),
        "cos": (1, t, cfg.head_dim),
        "gate": gates,
        "hidden": (mb * t, c),
        "weight": (cfg.vocab_size, c),
    }


def check_shapes(bench, key: str) -> dict:
    """The shapes of the benchmark's own kernel check of `key` (`_kernel_case`)."""
    _, grads, consts = bench._kernel_case(key)
    if key == "rmsnorm":
        return {"x": tuple(grads[0].shape)}
    if key == "rope":
        return {"q": tuple(grads[0].shape), "k": tuple(grads[1].shape), "cos": tuple(consts[0].shape)}
    if key == "silu_mul":
        return {"gate": [tuple(grads[0].shape)]}
    return {"hidden": tuple(grads[0].shape), "weight": tuple(grads[1].shape), "chunk_size": 128}


def record_launches(bench) -> list:
    cfgs = [bench.steel_config(m, "1b", v, "all") for m, v in (("llama", 32000), ("llama", 151936), ("steel-1b", 0))]
    with recording() as launches:
        for key, cases in bench.KERNEL_CHECK_CASES.items():
            for dtypes, autocast in cases.values():
                for cfg in cfgs:
                    for mb in MICRO_BATCHES:
                        launch_ops(bench, key, dtypes, autocast, row_shapes(cfg, mb))
                launch_ops(bench, key, dtypes, autocast, check_shapes(bench, key))
    return launches


def extent(t: torch.Tensor) -> int:
    """Elements from the storage's start to this tensor's last element, plus one."""
    return t.storage_offset() + sum((s - 1) * st for s, st in zip(t.shape, t.stride())) + 1


def check_launch(fn: JITFunction, grid: tuple, args: tuple, num_warps: int) -> None:
    assert 1 <= len(grid) <= 3, (fn.__name__, grid)
    for g, limit in zip(grid, GRID_LIMITS):
        assert 1 <= g <= limit, f"{fn.__name__}: grid {grid} beyond the CUDA limits {GRID_LIMITS}"
    assert num_warps * 32 <= 1024, f"{fn.__name__}: {num_warps} warps"
    if fn.__name__ in INT32_OFFSETS:
        for a in args:
            if isinstance(a, torch.Tensor):
                assert extent(a) < 2**31, f"{fn.__name__}: a {tuple(a.shape)} tensor overflows int32 offsets"


def compile_and_check(arch: int, fn: JITFunction, signature, constexprs, attrs, options) -> None:
    src = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    k = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
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
    assert spills and max(spills) == 0, f"{fn.__name__} {constexprs} sm_{arch}: {info}"


def main() -> None:
    kernel = MODS["rmsnorm"]._rms_norm_fwd_kernel
    assert type(kernel).__name__ == "JITFunction", f"interpreted, not compiled: {type(kernel)}"
    launches = record_launches(load_bench())
    n = 0
    for arch in (90, 80):
        backend = make_backend(GPUTarget("cuda", arch, 32))
        unique = {}
        for fn, grid, args, kwargs in launches:
            # As JITFunction.run specializes a launch (triton/runtime/jit.py), less the device.
            bound, specialization, options = create_function_from_signature(fn.signature, fn.params, backend)(
                *args, **kwargs
            )
            options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
            check_launch(fn, grid, args, options.num_warps)
            key = (fn.__name__, repr(signature), repr(constexprs), repr(attrs), repr(options))
            unique.setdefault(key, (fn, signature, constexprs, attrs, options.__dict__))
        for fn, signature, constexprs, attrs, options in unique.values():
            compile_and_check(arch, fn, signature, constexprs, attrs, options)
            print("compiled", arch, fn.__name__, flush=True)
            n += 1
    print(n, "compiled")


if __name__ == "__main__":
    main()
