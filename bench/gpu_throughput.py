"""Training throughput on one GPU: the plain HF eager step vs Steel's own step, in one process.

For each model (a 1.1B dense Llama shape with vocab 32000 and 151936, and steel-1b) this measures
  baseline   the plain HF step of `../shared/bench/hf_baseline.py`: fp32 master weights + bf16 autocast,
             SDPA, fused AdamW, micro-batch 4 x 2048, eager (for steel-1b: SteelForCausalLM, no kernels)
  steel ...  Steel's training step as `steel.train.trainer.main` builds it: the fp32 model with
             `kernels: all` (fused RMSNorm/RoPE/silu*mul/linear+CE), then `steel.train.distributed.parallelize`
             (parameters cast to `param_dtype`, buffers such as RoPE's inv_freq left fp32; activation
             checkpointing; per-block torch.compile), then the optimizer of `build_optimizer`; the loss from
             the fused CE, and one of two precisions:
               fp32-master  fp32 parameters + bf16 autocast (as the baseline)
               bf16         bf16 parameters, no autocast; fp32 master weights + fp32 AdamW state
                            (MasterWeightAdamW)
and prints one JSON line per row: step time (median of `--steps`), tokens/s, MFU, peak memory, the parameter
dtypes it checked, and the ratio of tokens/s and of peak memory to the same model's baseline in this run.

Order: every baseline first, then a correctness check of each Steel kernel against its torch reference on the
device, with the dtypes both precisions hand it (in a child process: a kernel that breaks the CUDA context
cannot take this one down; each kernel has its own 60 s, so one that hangs costs only itself; after two hangs
in a row, or 150 s of checks, the rest are not checked; a kernel that fails or is not checked is replaced by
its reference in every Steel row, which says so), then the Steel rows: each model's DEFAULT_VARIANTS in
their order (the rows that test the issue's targets first), taken in turn across models, except that with
compile on a row whose compiled blocks an earlier row made (the other Llama vocabulary at the same settings)
runs next: it costs seconds where a fresh compile costs minutes.
The first Steel row of a model and precision that fails other than by running out of memory (in the
compiled model, where the kernel checks cannot look) runs again with compile off, and if that fails too,
also with kernels none; the first that works is used by the later Steel rows of that model and precision
(both Llama vocabularies count as one model), which say so.
A time budget (`--budget-s`, counted from the process start) skips a row whose estimated time would overrun
it (a fresh compile: 90 s until one is measured, then the slowest measured x 1.3); the Markdown table is
rewritten after every row and after the kernel checks, so a kill keeps what was measured. A failure's whole
traceback (and a failed kernel check's child stderr) goes to the log; the table has its first 200 characters.

MFU = tokens/s x FLOPs per token / peak. `mfu` uses the true FLOPs of `steel.model.flops` (what the
model really multiplies); `mfu_6n` uses 6N + 12 L d T with N the non-embedding parameters, as in
issue 5 and hf_baseline.py. Their peak is `steel.train.metrics.peak_flops` of the device name (H100 SXM:
989.4 TFLOP/s dense bf16; "H100 PCIe": 756). `mfu_6n_989t`, in every row, is 6N + 12 L d T against the
issue's fixed 989.4 TFLOP/s, whatever the name lookup says.

  python bench/gpu_throughput.py                 # the GPU benchmark (fits one 10-minute call on an H100)
  python bench/gpu_throughput.py --tiny          # CPU smoke run with toy shapes (~15 s on 2 cores)
With $OUT set, the log (the same JSON lines plus the table) goes to $OUT/gpu_throughput.log and the table to
$OUT/gpu_throughput.md.
"""

from __future__ import annotations

import time

# The 10-minute limit of a device call counts from the process start: imports and CUDA init included.
START = time.perf_counter()

import argparse
import contextlib
import gc
import importlib.metadata
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import traceback
import warnings
from pathlib import Path

import torch

import steel
from steel.kernels import (
    KERNEL_CHOICES,
    apply_rotary_pos_emb,
    fused_linear_cross_entropy,
    resolve_kernels,
    rms_norm,
    silu_mul,
    use_triton,
)
from steel.train.config import OptimSection, ParallelSection
from steel.train.distributed import Dist, autocast_dtype, parallelize
from steel.train.master_adamw import MasterWeightAdamW
from steel.train.metrics import peak_flops
from steel.train.optim import build_optimizer

# NOTE: steel.model (and with it transformers, ~3 s) is imported where it is used: the kernel-check child
# process needs only torch and steel.kernels.

LLAMA_SHAPES = {  # the shapes of hf_baseline.py
    "1b": {
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 22,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
    },
    "tiny": {
        "hidden_size": 128,
        "intermediate_size": 352,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
}
BASELINE = "eager (baseline)"
BASE_MB = 4  # the baseline's micro-batch (also with --tiny)
# Steel variants: (name, micro-batch, activation checkpointing, precision). --tiny runs the same ones.
STEEL_VARIANTS = [
    ("steel fp32-master mb4", 4, False, "fp32-master"),
    ("steel bf16 mb4", 4, False, "bf16"),
    ("steel bf16 mb8", 8, False, "bf16"),
    ("steel bf16 mb16 ac", 16, True, "bf16"),
    # The memory row for vocab 151936: 16 bytes/parameter of weights + fp32 master + AdamW state are
    # already ~46% of HF's 55 GB there, so <= 60% at micro-batch 4 needs the activations checkpointed.
    ("steel bf16 mb4 ac", 4, True, "bf16"),
]
VARIANTS = {v[0]: v for v in STEEL_VARIANTS}
PRECISIONS = ("bf16", "fp32-master")  # also the case names of KERNEL_CHECK_CASES: each is checked as its rows call it
# Which variants run by default, per model, in this order: first the row that tests the model's target of
# the issue (vocab 32000: MFU and x1.4 tokens/s at the baseline's micro-batch; vocab 151936: peak memory
# <= 60% of HF's at micro-batch 4, then its MFU; steel-1b: tokens/s and MFU), then the other settings.
# Compiling the 22 Llama blocks once per precision / micro-batch / AC setting is most of the time; the
# second Llama vocabulary reuses those compiled blocks (the vocabulary only changes the embedding and head),
# steel-1b compiles anew.
DEFAULT_VARIANTS = {
    "llama:32000": ["steel bf16 mb4", "steel bf16 mb8", "steel fp32-master mb4", "steel bf16 mb16 ac"],
    "llama:151936": ["steel bf16 mb4 ac", "steel bf16 mb4", "steel bf16 mb8", "steel fp32-master mb4"],
    "steel-1b": ["steel bf16 mb4", "steel bf16 mb8"],
}
DEFAULT_MODELS = "llama:32000,llama:151936,steel-1b"
TINY_MODELS = "llama:1000,llama:3001,steel-1b"
TINY_STANDS_FOR = {"llama:1000": "llama:32000", "llama:3001": "llama:151936"}  # --tiny: whose variants it runs

# Time-budget estimates used until a row of the same kind has been measured (then its figures are used):
SETUP_S = 20.0  # build a 1.1B model, place it on the GPU, build the optimizer
STEP_S = 1.0  # one step at micro-batch 4 x 2048 (HF's: ~0.15 s at vocab 32000 on an H100, per the issue)
COLD_COMPILE_S = 90.0  # first step of a row whose blocks compile anew, until one has been measured (a guess)
# Once one has: the slowest measured one x this margin (steel-1b's blocks differ from Llama's), at least:
COLD_COMPILE_MARGIN = 1.3
COLD_COMPILE_MIN_S = 10.0
KERNEL_CHECK_S = 60.0  # all kernel checks: start a child, import, compile the kernels, run them
# A child gets this long for its first kernel (start and imports included) and again for each next one; a
# kernel that hangs costs only itself: the rest go to a fresh child.
KERNEL_CHECK_TIMEOUT_S = 60.0
KERNEL_CHECK_EXIT_S = 10.0  # a child's time to exit after its last result or its stdout closed: then killed
KERNEL_CHECK_MAX_HANGS = 2  # children hung in a row: the rest are not checked
# All the checks together, at most (a hang costs KERNEL_CHECK_TIMEOUT_S): the rows need the rest of the budget.
KERNEL_CHECKS_MAX_S = 150.0
# MFU against the issue's fixed peak (H100 SXM dense bf16), whatever `peak_flops` makes of the device name
# (an "H100 PCIe" would give 756e12).
ISSUE_PEAK_FLOPS = 989.4e12

log_file = None


def emit(obj: dict) -> None:
    line = json.dumps(obj)
    print(line, flush=True)
    if log_file is not None:
        log_file.write(line + "\n")
        log_file.flush()


def elapsed() -> float:
    return time.perf_counter() - START


# --- models ------------------------------------------------------------------------------------------
def hf_llama(shape: str, vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
        **LLAMA_SHAPES[shape],
    )
    return LlamaForCausalLM(cfg), cfg


def steel_config(model: str, shape: str, vocab: int, kernels):
    """SteelConfig of `model`: `llama` = the Llama shape as a Steel SwiGLU model (same parameters)."""
    from steel.model import load_model_config

    if model == "llama":
        cfg = load_model_config(
            dict(
                model_type="steel",
                vocab_size=vocab,
                max_position_embeddings=2048,
                tie_word_embeddings=False,
                attention_bias=False,
                ffn_type="swiglu",
                rope_theta=10000.0,
                rms_norm_eps=1e-6,
                attn_implementation="sdpa",
                **LLAMA_SHAPES[shape],
            )
        )
    else:
        cfg = load_model_config("tiny" if shape == "tiny" else "steel-1b")
        cfg._attn_implementation = "sdpa"
    cfg.kernels = resolve_kernels(kernels)
    return cfg


def flops(cfg, model: torch.nn.Module, seq: int) -> tuple[float, float]:
    """(true FLOPs per token, 6N + 12 L d T with N the non-embedding parameters)."""
    from steel.model.flops import flops_per_token

    n = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    return float(
        flops_per_token(cfg, seq)["true"]
    ), 6 * n + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq


def checked_dtypes(model: torch.nn.Module, variant: str, want: torch.dtype) -> dict:
    """Raise unless every parameter is `want` and RoPE's inv_freq buffers are fp32; the dtypes, for the row.

    A bf16 row silently running fp32 parameters (cast back by a default `param_dtype: fp32`) measured fp32/TF32
    speed under a bf16 label; a bf16 inv_freq loses the angles' low digits.
    """
    name = lambda dt: str(dt).removeprefix("torch.")  # noqa: E731
    params = {name(p.dtype) for p in model.parameters()}
    inv_freq = {name(b.dtype) for n, b in model.named_buffers() if n.rsplit(".", 1)[-1].endswith("inv_freq")}
    if params != {name(want)}:
        raise RuntimeError(f"{variant}: parameters in {sorted(params)}, want {name(want)}")
    if inv_freq != {"float32"}:
        raise RuntimeError(f"{variant}: RoPE inv_freq buffers in {sorted(inv_freq) or 'none found'}, want float32")
    return {"param_dtype": name(want), "inv_freq_dtype": "float32"}


# --- the plan ----------------------------------------------------------------------------------------
def plan(specs: list[str], tiny: bool, variants: list[str] | None) -> list[tuple[str, int, tuple | None]]:
    """Rows in run order, (model, vocab, variant or None for the baseline): every baseline first (no Steel
    kernel has run yet, so none can break the CUDA context under a baseline), then each model's variants in
    their DEFAULT_VARIANTS order (or `variants`' order), in turn across models: every model's first row
    before any model's second, so a time budget that runs out cuts the least informative rows."""
    models = []
    for spec in specs:
        model_name, _, vocab = spec.partition(":")
        if model_name not in ("llama", "steel-1b") or (model_name == "llama" and not vocab.isdigit()):
            raise ValueError(f"--models: {spec!r} is neither llama:VOCAB nor steel-1b")
        vocab = int(vocab) if vocab else (512 if tiny else 151936)
        names = variants or DEFAULT_VARIANTS.get(TINY_STANDS_FOR.get(spec, spec) if tiny else spec, list(VARIANTS))
        models.append((model_name, vocab, [VARIANTS[n] for n in names]))
    rows = [(m, v, None) for m, v, _ in models]
    for i in range(max((len(vs) for *_, vs in models), default=0)):
        rows += [(m, v, vs[i]) for m, v, vs in models if i < len(vs)]
    return rows


def compile_key(model_name: str, variant: tuple, compile_: bool, kernels: dict) -> tuple:
    """What the compiled blocks depend on: rows with the same key reuse them (the vocabulary is not in it)."""
    _, mb, ac, precision = variant
    return model_name, mb, ac, precision, compile_, tuple(sorted(kernels.items()))


def estimate_row_s(model_name: str, vocab: int, variant: tuple | None, done: list[dict], steps: int,
                   cold: bool) -> float:
    """Seconds a row should take: setup, first step (a compile when `cold`), `steps` steps.

    From the rows measured so far (`done`) where there are any: the slowest setup, the baseline's step time
    scaled by the micro-batch (Steel's step should be faster), the slowest cold first step x COLD_COMPILE_MARGIN
    (at least COLD_COMPILE_MIN_S); the constants above before that.
    """
    measured = [r for r in done if "step_s" in r]
    setup = max([r["setup_s"] for r in measured] or [SETUP_S])
    bases = [r for r in measured if r["variant"] == BASELINE and r["model"] == model_name]
    bases = [r for r in bases if r["vocab"] == vocab] or bases
    if variant is None:
        return setup + (steps + 1) * max([r["step_s"] for r in bases] or [STEP_S])
    _, mb, ac, _ = variant
    step = max([r["step_s"] * mb / r["mb"] for r in bases] or [STEP_S * mb / BASE_MB])
    step *= 1.4 if ac else 1.0  # the forward again in backward
    if cold:
        cold_s = [r["first_step_s"] for r in measured if r.get("cold_compile")]
        first = max(COLD_COMPILE_MIN_S, COLD_COMPILE_MARGIN * max(cold_s)) if cold_s else COLD_COMPILE_S
    else:
        first = 3 * step
    return setup + first + steps * step


# --- optimizer of the baseline -----------------------------------------------------------------------
class FP32Master:
    """fp32 parameters (the model's own), fused AdamW, grad clipping at 1.0: hf_baseline's optimizer."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=3e-4, fused=device.type == "cuda")

    def step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


# --- measurement -------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, steps: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """(median seconds per step over `steps` after `warmup` untimed ones, last loss)."""
    times, loss = [], float("nan")
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        loss_t = step()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
        if i == warmup + steps - 1:
            loss = float(loss_t)
    times.sort()
    return times[len(times) // 2], loss


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        # After a sticky CUDA error these raise too; the row's own error is what is reported.
        with contextlib.suppress(RuntimeError):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()


def cuda_usable(device: torch.device) -> bool:
    """False once a device-side assert or illegal address has broken this process's CUDA context."""
    if device.type != "cuda":
        return True
    try:
        torch.cuda.synchronize()
        return torch.ones(1, device=device).sum().item() == 1.0
    except RuntimeError:
        return False


def peak_mem_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0


def result_row(model_name, vocab, variant, mb, seq, t, loss, device, true_fpt, six_fpt, setup_s) -> dict:
    """The columns every measured run reports."""
    return {
        "model": model_name,
        "vocab": vocab,
        "variant": variant,
        "mb": mb,
        "seq": seq,
        "step_s": round(t, 4),
        "tokens_per_s": round(mb * seq / t),
        "peak_mem_gib": round(peak_mem_gib(device), 2),
        "loss": round(loss, 3),
        "true_flops_per_token": true_fpt,
        "six_n_flops_per_token": six_fpt,
        "setup_s": round(setup_s, 2),
    }


def run_baseline(model_name: str, shape: str, vocab: int, seq: int, args, device) -> dict:
    from steel.model import build_model

    t_setup = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        if model_name == "llama":
            model, cfg = hf_llama(shape, vocab)
        else:  # steel-1b has no stock HF class: the Steel model without kernels or compile is its eager step
            cfg = steel_config(model_name, shape, vocab, "none")
            model = build_model(cfg)
    model.train()
    dtypes = checked_dtypes(model, BASELINE, torch.float32)
    opt = FP32Master(model, device)
    x = torch.randint(0, vocab, (BASE_MB, seq), device=device)

    def step():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            out = model(input_ids=x, labels=x)
        out.loss.backward()
        opt.step()
        return out.loss.detach()

    sync(device)
    setup_s = time.perf_counter() - t_setup
    t, loss = time_steps(step, args.steps, args.warmup, device)
    true_fpt, six_fpt = flops(cfg, model, seq)
    res = result_row(model_name, vocab, BASELINE, BASE_MB, seq, t, loss, device, true_fpt, six_fpt, setup_s)
    return {**res, **dtypes, "autocast": "bfloat16"}  # model, optimizer, batch freed on return; then release()


def run_steel(model_name: str, shape: str, vocab: int, variant: tuple, seq: int, args, device,
              kernels: dict, compile_: bool) -> dict:
    from steel.model import build_model

    name, mb, ac, precision = variant
    t_setup = time.perf_counter()
    torch.manual_seed(0)
    cfg = steel_config(model_name, shape, vocab, kernels)
    with torch.device(device):
        model = build_model(cfg)  # fp32, as the trainer builds it
    model.train()
    true_fpt, six_fpt = flops(cfg, model, seq)
    # As steel.train.trainer.main: parallelize (casts parameters, not buffers, to param_dtype; AC; compile),
    # then the optimizer over the parameters it leaves.
    par = ParallelSection(
        mode="none", dtype="bf16", param_dtype="bf16" if precision == "bf16" else "fp32", compile=compile_,
        activation_checkpointing=ac,
    )
    par.validate()
    model = parallelize(model, par, Dist(rank=0, world_size=1, local_rank=0, device=device, mode="none"))
    opt = build_optimizer(model, OptimSection(lr=3e-4), device, master_weights=par.param_dtype == "bf16")
    dtypes = checked_dtypes(model, name, torch.bfloat16 if par.param_dtype == "bf16" else torch.float32)
    autocast = autocast_dtype(par, device)  # bf16 for fp32-master (as the baseline), none for bf16 parameters
    params = [p for p in model.parameters() if p.requires_grad]
    x = torch.randint(0, vocab, (mb, seq), device=device)

    def step():  # the trainer's train_step for one micro-batch
        with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
            out = model(input_ids=x, labels=x)  # labels: the model's fused linear + CE, no (B, T, V) logits
        out.loss.backward()
        if isinstance(opt, MasterWeightAdamW):
            opt.clip_grad_norm_(1.0)
        else:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.detach()

    sync(device)
    setup_s = time.perf_counter() - t_setup
    t0 = time.perf_counter()
    step()  # first call: compiles; not timed
    sync(device)
    first_s = time.perf_counter() - t0
    t, loss = time_steps(step, args.steps, args.warmup, device)
    return {  # model, optimizer and batch are freed on return; main() then calls release()
        **result_row(model_name, vocab, name, mb, seq, t, loss, device, true_fpt, six_fpt, setup_s),
        **dtypes,
        "autocast": None if autocast is None else "bfloat16",
        "compile": compile_,
        "activation_checkpointing": ac,
        "precision": precision,
        "kernels": kernels,
        "first_step_s": round(first_s, 2),
    }


def with_ratios(res: dict, base: dict | None, peak: float | None) -> dict:
    tps = res["tokens_per_s"]
    res["mfu"] = round(tps * res["true_flops_per_token"] / peak, 4) if peak else None
    res["mfu_6n"] = round(tps * res["six_n_flops_per_token"] / peak, 4) if peak else None
    res["mfu_6n_989t"] = round(tps * res["six_n_flops_per_token"] / ISSUE_PEAK_FLOPS, 4)
    if base is not None:
        res["speedup_vs_baseline"] = round(tps / base["tokens_per_s"], 3)
        if base["peak_mem_gib"] > 0:
            res["mem_vs_baseline"] = round(res["peak_mem_gib"] / base["peak_mem_gib"], 3)
    return res


def matmul_tflops(device: torch.device) -> float:
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    sync(device)
    t0 = time.perf_counter()
    for _ in range(20):
        a @ a
    sync(device)
    return 2 * 8192**3 / ((time.perf_counter() - t0) / 20) / 1e12


# --- kernel checks -----------------------------------------------------------------------------------
# NOTE: a smoke check for a kernel broken on this GPU / Triton (a wrong index or mask gives O(1) errors or
# NaN), not the precision tests of tests/kernels: input values rounded to bf16 (then held in each case's
# dtypes), the reference in fp32 on the same values, and a bound of 2^-5 of the largest expected value, i.e.
# 4 bf16 roundings at the interpreter's 2^-7 (tests/kernels/tolerances.py), 8 at a GPU's 2^-8; the kernel
# tests allow at most 4 roundings.
KERNEL_CHECK_TOL = 2.0**-5
BF16, FP32 = torch.bfloat16, torch.float32
# The dtypes the Steel rows hand each op (seen by wrapping steel.kernels in a --tiny run; the smoke test
# checks that these are all of them): a bf16 row passes bf16 everywhere, without autocast; an fp32-master
# row (fp32 parameters, bf16 autocast) passes the fp32 residual stream and fp32 weights to the norms and the
# fused CE, and autocast's bf16 q/k with fp32 cos/sin to RoPE (whose outputs are then fp32).
# NOTE: autocast does not cast the inputs of a custom op, so these dtypes reach the kernels as they are.
KERNEL_CHECK_CASES: dict[str, dict[str, tuple[tuple[torch.dtype, ...], bool]]] = {
    # key: {case: (dtype of each floating input: the inputs that get gradients, then the constants; autocast)}
    "rmsnorm": {"bf16": ((BF16, BF16), False), "fp32-master": ((FP32, FP32), True)},
    "rope": {"bf16": ((BF16,) * 4, False), "fp32-master": ((BF16, BF16, FP32, FP32), True)},
    "silu_mul": {"bf16": ((BF16, BF16), False), "fp32-master": ((BF16, BF16), True)},
    "cross_entropy": {"bf16": ((BF16, BF16), False), "fp32-master": ((FP32, FP32), True)},
}


def _kernel_case(key: str):
    """(op(impl, *grad_inputs, *consts), inputs that get gradients, constant inputs): small, odd shapes."""
    g = torch.Generator().manual_seed(0)
    randn = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    if key == "rmsnorm":
        return (lambda impl, x, w: rms_norm(x, w, 1e-6, impl=impl)), [2 * randn(3, 37, 67), 1 + 0.5 * randn(67)], []
    if key == "rope":
        angles = torch.arange(37.0)[:, None] * 0.5 ** torch.arange(32.0)  # (T, D/2), as RoPE's
        emb = torch.cat([angles, angles], -1)[None]  # (1, T, D)
        return (
            (lambda impl, q, k, cos, sin: apply_rotary_pos_emb(q, k, cos, sin, impl=impl)),
            [randn(2, 4, 37, 64), randn(2, 2, 37, 64)],
            [emb.cos(), emb.sin()],
        )
    if key == "silu_mul":
        return (lambda impl, a, b: silu_mul(a, b, impl=impl)), [randn(3, 37, 173), randn(3, 37, 173)], []
    if key == "cross_entropy":
        labels = torch.randint(0, 1003, (300,), generator=g)
        labels[::7] = -100  # ignored positions
        return (
            # chunk_size 128: 300 tokens in three chunks, the last one partial
            (lambda impl, h, w, y: fused_linear_cross_entropy(h, w, y, chunk_size=128, impl=impl)),
            [randn(300, 64), 0.2 * randn(1003, 64)],
            [labels],
        )
    raise ValueError(f"no kernel check for {key!r}")


def check_kernel(key: str, device: torch.device) -> dict:
    """Forward and every input gradient of the op the model would call on `device`, for each dtype case of
    KERNEL_CHECK_CASES, vs the fp32 reference on the same values."""
    op, grad_inputs, consts = _kernel_case(key)
    impl = "triton" if use_triton(grad_inputs[0].to(device), "auto") else "torch"  # what the model runs here

    def run(impl: str, dtypes: tuple[torch.dtype, ...], autocast: bool, dys=None):
        dt = iter(dtypes)
        xs = [t.to(device, BF16).to(next(dt)).requires_grad_() for t in grad_inputs]
        cs = [c.to(device, BF16).to(next(dt)) if c.is_floating_point() else c.to(device) for c in consts]
        with torch.autocast(device.type, dtype=BF16, enabled=autocast):  # as the row's forward
            outs = op(impl, *xs, *cs)
        outs = list(outs) if isinstance(outs, tuple) else [outs]
        if dys is None:
            g = torch.Generator().manual_seed(1)
            dys = [torch.randn(o.shape, generator=g).to(BF16) for o in outs]
        grads = torch.autograd.grad(outs, xs, [dy.to(device, o.dtype) for dy, o in zip(dys, outs)])
        return [t.detach().float() for t in (*outs, *grads)], dys

    # Each case on its own: one that fails (e.g. a path only fp32 weights take) costs the kernel only in the
    # rows of that precision (a case is named as the rows' precision).
    errs, ok_by_case, errors, tracebacks = {}, {}, [], []
    for case, (dtypes, autocast) in KERNEL_CHECK_CASES[key].items():
        try:
            got, dys = run(impl, dtypes, autocast)
        except Exception as e:  # noqa: BLE001 -- reported; the child stops after this kernel (see kernel_check_child)
            names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
            ok_by_case[case] = False
            errors.append(f"{key} on {case} inputs ({names}{', bf16 autocast' if autocast else ''}): "
                          f"{type(e).__name__}: {e}"[:400])
            tracebacks.append(traceback.format_exc())
            continue
        want, _ = run("torch", (FP32,) * len(dtypes), False, dys)
        if not all(torch.isfinite(a).all() for a in got):
            ok_by_case[case] = False
            errors.append(f"non-finite values ({case} inputs)")
            continue
        errs[case] = round(max(((a - e).abs().max() / e.abs().max().clamp_min(1e-30)).item()
                                for a, e in zip(got, want)), 5)
        ok_by_case[case] = errs[case] <= KERNEL_CHECK_TOL
    res = {"ok": all(ok_by_case.values()), "impl": impl, "ok_by_case": ok_by_case}
    if errs:
        res.update(max_rel_err=max(errs.values()), max_rel_err_by_case=errs)
    if errors:
        res["error"] = "; ".join(errors)
    if tracebacks:
        res["raised"], res["traceback"] = True, "\n".join(tracebacks)
    return res


def case_ok(res: dict, precision: str) -> bool:
    """Whether a kernel check's result lets rows of `precision` use the kernel (a result without cases: a
    check that crashed, hung or was not run, fails every precision)."""
    return bool(res.get("ok_by_case", {}).get(precision, res.get("ok")))


def short_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:400]


def kernel_check_child(keys: list[str]) -> int:
    """`--check-kernels`: one JSON line per kernel; stop after the first kernel that raised (the context may be
    broken)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for key in keys:
        t0 = time.perf_counter()
        try:
            res = check_kernel(key, device)
            sync(device)
        except Exception as e:  # noqa: BLE001 -- reported to the parent, which checks the rest anew
            rec = {"kernel_check": key, "ok": False, "error": short_error(e), "traceback": traceback.format_exc()}
            print(json.dumps(rec), flush=True)
            return 1
        print(json.dumps({"kernel_check": key, **res, "s": round(time.perf_counter() - t0, 1)}), flush=True)
        if res.get("raised"):  # a case raised: the context may be broken, the rest go to a fresh child
            return 1
    return 0


def kernel_check_cmd(keys: list[str]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--check-kernels", ",".join(keys)]


def _check_line(line: str) -> dict | None:
    """A child's result line, or None (other output; a line cut short by a kill)."""
    if not line.startswith('{"kernel_check"'):
        return None
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def check_kernels(keys: list[str], timeout_s: float = KERNEL_CHECK_TIMEOUT_S,
                  deadline_s: float | None = None) -> dict[str, dict]:
    """{key: result} of `check_kernel` for each key, run in child processes: a kernel that breaks the CUDA
    context (device assert, illegal address) breaks the child's, not this one's.

    A child gets `timeout_s` for its first kernel (its start and imports included) and again for each next
    one. A child stops at a kernel that raises: it gets KERNEL_CHECK_EXIT_S to exit (a broken context can
    hang its exit), then is killed. A kernel a child gives no result for (a crash, a hang past its timeout,
    then a kill) fails; the rest go to a fresh child, each with its own timeouts again. After
    KERNEL_CHECK_MAX_HANGS hangs in a row (the GPU itself is stuck, most likely) the rest fail as not
    checked, as they do when `deadline_s` (seconds since the process start) comes. A failed kernel's result
    carries the child's whole stderr.
    """
    results: dict[str, dict] = {}
    src = str(Path(steel.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    hangs = 0  # children in a row that hung
    while todo := [k for k in keys if k not in results]:
        not_checked = None
        if deadline_s is not None and elapsed() + 1.0 > deadline_s:
            not_checked = f"not checked: time budget ({elapsed():.0f} s elapsed)"
        elif hangs >= KERNEL_CHECK_MAX_HANGS:
            not_checked = f"not checked: {hangs} kernel checks in a row hung"
        if not_checked:
            for k in todo:
                results[k] = {"ok": False, "error": not_checked}
            break
        lines: queue.Queue[str | None] = queue.Queue()
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
            p = subprocess.Popen(kernel_check_cmd(todo), stdout=subprocess.PIPE, stderr=err, text=True, env=env)

            def pump(out=p.stdout, lines=lines) -> None:
                for x in out:
                    lines.put(x)
                lines.put(None)

            threading.Thread(target=pump, daemon=True).start()
            # why this child stopped; `blame`: the next pending kernel stopped it (it gave that one no result)
            mine, why, blame, t_last = [], None, False, time.perf_counter()
            try:
                while pending := [k for k in todo if k not in results]:
                    limit = timeout_s if deadline_s is None else max(0.0, min(timeout_s, deadline_s - elapsed()))
                    try:
                        line = lines.get(timeout=max(0.0, t_last + limit - time.perf_counter()))
                    except queue.Empty:
                        why, blame = f"no result in {limit:.3g} s, its own time limit: killed", True
                        break
                    if line is None:  # its stdout closed, without a result for pending[0]: it crashed
                        try:
                            why = f"exit {p.wait(timeout=KERNEL_CHECK_EXIT_S)}"
                        except subprocess.TimeoutExpired:
                            why = f"stdout closed, no exit in {KERNEL_CHECK_EXIT_S:g} s: killed"
                        blame = True
                        break
                    if (rec := _check_line(line)) is not None:
                        key = rec.pop("kernel_check")
                        results[key] = rec
                        mine.append(key)
                        t_last = time.perf_counter()
                        if not rec.get("ok"):  # the child stops here; the rest go to a fresh one
                            with contextlib.suppress(subprocess.TimeoutExpired):
                                p.wait(timeout=KERNEL_CHECK_EXIT_S)  # its stderr complete, if it exits
                            break
            finally:
                if p.poll() is None:
                    p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=30)
            err.seek(0)
            stderr = err.read()
        hung = why is not None and why.startswith("no result")
        hangs = hangs + 1 if hung else 0
        if pending and blame:
            results[pending[0]] = {"ok": False, "error": f"the check process gave no result ({why})"}
            mine.append(pending[0])
        for k in mine:
            if not results[k]["ok"]:
                results[k]["stderr"] = stderr
    return results


def run_kernel_checks(keys: list[str], budget_s: float) -> tuple[dict[str, dict], str]:
    """({key: result}, the table's line) of `check_kernels`, each result emitted to the log. Whatever goes
    wrong here fails the checks (the kernels' references are used), never the run."""
    try:
        got = check_kernels(keys, KERNEL_CHECK_TIMEOUT_S, deadline_s=min(budget_s, elapsed() + KERNEL_CHECKS_MAX_S))
        checks = {k: got.get(k) or {"ok": False, "error": "no result"} for k in keys}
    except Exception as e:  # noqa: BLE001 -- no Steel row is lost to a bug in the checking
        emit({"kernel_checks_error": short_error(e), "traceback": traceback.format_exc()})
        checks = {k: {"ok": False, "error": f"the checks raised {short_error(e)}"} for k in keys}
    for k, r in checks.items():
        emit({"kernel_check": k, **r})

    def summary(r: dict) -> str:
        if "ok_by_case" in r:
            errs = r.get("max_rel_err_by_case", {})
            return ", ".join(f"{case} max rel err {errs[case]:.2g}" if case in errs else f"{case} {'ok' if ok else 'FAILED'}"
                             for case, ok in r["ok_by_case"].items()) + (
                f" ({cell(str(r['error']), 160)})" if r.get("error") else "")
        return cell(str(r.get("error", "")), 160)

    def verdict(r: dict) -> str:
        if r.get("ok"):
            return "ok"
        good = [case for case, ok in r.get("ok_by_case", {}).items() if ok]
        return f"FAILED except for {', '.join(good)} rows" if good else "FAILED"

    line = "; ".join(f"{k} {verdict(r)} ({r.get('impl', '?')}: {summary(r)})" for k, r in checks.items())
    return checks, line


def is_oom(e: BaseException) -> bool:
    # NOTE: inductor and autograd wrap errors; the message of the CUDA allocator's survives in theirs.
    # cuBLAS/cuDNN say it their way (CUBLAS_STATUS_ALLOC_FAILED when a handle's workspace finds no memory).
    msg = str(e).lower()
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in msg or "alloc_failed" in msg


def settings(compile_: bool, kernels: dict) -> str:
    fused = [k for k, v in kernels.items() if v != KERNEL_CHOICES[k][0]]
    return f"compile {'on' if compile_ else 'off'}, kernels {'+'.join(fused) or 'none'}"


def fallbacks(compile_: bool, kernels: dict) -> list[tuple[str, bool, dict]]:
    """What to try, in order, after a Steel row failed with these settings: compile off, then also kernels
    none (label, compile, kernels); each only where it differs from what failed and what comes before it."""
    out, seen = [], {(compile_, tuple(sorted(kernels.items())))}
    for label, c, k in [("compile off", False, kernels), ("compile off, kernels none", False, resolve_kernels("none"))]:
        if (c, tuple(sorted(k.items()))) not in seen:
            seen.add((c, tuple(sorted(k.items()))))
            out.append((label, c, dict(k)))
    return out


# --- the table ---------------------------------------------------------------------------------------
def cell(text: str, limit: int = 200) -> str:
    """`text` as one short Markdown table cell (the whole text is in the log)."""
    text = " ".join(text.replace("|", "/").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def table(header: dict, checks: str, rows: list[dict]) -> str:
    pct = lambda f: f"{100 * f:.1f}%" if f is not None else "n/a"  # noqa: E731
    peak = header.get("peak_tflops")
    lines = [
        "# bench/gpu_throughput.py",
        "",
        ", ".join(f"{k} {v}" for k, v in header.items()),
        "",
        "MFU (true) and MFU (6N+12LdT): against "
        + (f"{peak:g} TFLOP/s, the peak `steel.train.metrics.peak_flops` gives for device {header.get('device')!r}"
           if peak else f"no peak (none known for device {header.get('device')!r}): n/a")
        + f". MFU 6N @989.4T: 6N+12LdT against the issue's fixed {ISSUE_PEAK_FLOPS / 1e12:g} TFLOP/s "
        "(H100 SXM dense bf16).",
        "",
        f"Kernel checks: {checks}",
        "",
        "| model | vocab | variant | tokens/s | MFU (true) | MFU (6N+12LdT) | MFU 6N @989.4T | peak GiB "
        "| x baseline tok/s | x baseline mem | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = f"| {r['model']} | {r['vocab']} | {r['variant']} "
        if "tokens_per_s" not in r:  # skipped or failed
            note = r.get("skipped") or "error: " + cell(r["error"])
            if r.get("note"):
                note = cell(r["note"], 400) + "; " + note
            lines.append(head + f"| - | - | - | - | - | - | - | {note} |")
            continue
        is_base = r["variant"] == BASELINE
        speed = 1.0 if is_base else r.get("speedup_vs_baseline", "n/a (no baseline)")
        mem = "n/a (no GPU)" if r["peak_mem_gib"] == 0 else (1.0 if is_base else r.get("mem_vs_baseline", "n/a"))
        lines.append(
            head + f"| {r['tokens_per_s']:,} | {pct(r['mfu'])} | {pct(r['mfu_6n'])} | {pct(r['mfu_6n_989t'])} "
            f"| {r['peak_mem_gib']} | {speed} | {mem} | {cell(r.get('note', ''), 400)} |"
        )
    return "\n".join(lines) + "\n"


def write_atomic(path: Path | None, text: str) -> None:
    if path is not None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # a kill mid-write leaves the previous table, not half a one


def versions() -> dict:
    out = {}
    for pkg in ("triton", "transformers"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        out["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["commit"] = None
    return out


def main(argv: list[str] | None = None) -> int:
    global log_file
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--tiny", action="store_true", help="toy shapes and vocabularies, seq 32, one step: a CPU smoke run"
    )
    ap.add_argument(
        "--models",
        default=None,
        help=f"comma list of llama:VOCAB and steel-1b (default {DEFAULT_MODELS}; "
        f"with --tiny {TINY_MODELS} at toy size, running the variants of the models they stand for)",
    )
    ap.add_argument(
        "--variants",
        default=None,
        help="comma list of Steel variant names for every model, in run order (default: DEFAULT_VARIANTS)",
    )
    ap.add_argument("--seq", type=int, default=None, help="sequence length (default 2048; 32 with --tiny)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per run (median reported)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps before timing")
    ap.add_argument("--kernels", default="all", help="Steel's kernels switch: all | none")
    ap.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile Steel's decoder blocks (default: on with CUDA, off on CPU)",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=480.0,
        help="skip a row when the seconds since the process start plus its estimated time would pass this "
        "(one device call is 600 s; the rest is margin for a row slower than estimated)",
    )
    ap.add_argument("--log", default=None, help="log file (default $OUT/gpu_throughput.log when $OUT is set); "
                    "the table goes next to it as .md")
    ap.add_argument("--check-kernels", default=None, help=argparse.SUPPRESS)  # the kernel-check child
    args = ap.parse_args(argv)
    if args.check_kernels:
        return kernel_check_child(args.check_kernels.split(","))
    shape = "tiny" if args.tiny else "1b"
    seq = args.seq or (32 if args.tiny else 2048)
    args.steps = args.steps or (1 if args.tiny else 10)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.tiny else 3)
    wanted = args.variants.split(",") if args.variants else None
    if wanted and set(wanted) - set(VARIANTS):
        ap.error(f"--variants: unknown {sorted(set(wanted) - set(VARIANTS))}; known: {list(VARIANTS)}")
    try:
        rows_plan = plan((args.models or (TINY_MODELS if args.tiny else DEFAULT_MODELS)).split(","), args.tiny, wanted)
    except ValueError as e:
        ap.error(str(e))
    log_path = args.log or (
        str(Path(os.environ["OUT"]) / "gpu_throughput.log") if os.environ.get("OUT") else None
    )
    md_path = None
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "w")  # noqa: SIM115 -- module-level sink for emit(), closed at the end
        md_path = Path(log_path).with_suffix(".md")

    from steel.model import SteelCausalityWarning

    # steel-1b's soft_moe_v3 reads the future: known, and irrelevant to throughput
    warnings.filterwarnings("ignore", category=SteelCausalityWarning)
    # several models, precisions and micro-batches in one process; `cache_size_limit` before torch 2.7
    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    setattr(torch._dynamo.config, limit, 64)
    torch._dynamo.config.automatic_dynamic_shapes = False  # a static graph per micro-batch: faster code
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # NOTE: TF32 stays as torch leaves it (off for matmuls), as in `steel train` and hf_baseline.py, neither of
    # which turns it on. It reaches only fp32 cuBLAS GEMMs: the bf16 and autocast GEMMs that make up the step
    # do not read it, nor do Triton's kernels or the fused CE (it multiplies in the autocast dtype), and the HF
    # baseline has none under autocast (transformers 5 computes RoPE's angles elementwise; before, an fp32
    # inv_freq @ positions matmul with autocast off, which TF32's 11-bit inputs put up to 0.3 rad off at
    # position 2047). What the process-wide switch did change was steel-1b's fp32 router GEMM (`xn @ phin`,
    # kept fp32 on purpose) in the bf16-parameter rows: faster and rounder than the trainer runs it. The header
    # records the setting the run had.
    peak, device_name = peak_flops(device)
    compile_ = args.compile if args.compile is not None else device.type == "cuda"
    header = {
        "torch": torch.__version__,
        **versions(),
        "device": device_name,
        "peak_tflops": peak and peak / 1e12,
        "seq": seq,
        "shape": shape,
        "compile": compile_,
        "tf32": torch.backends.cuda.matmul.allow_tf32,
        "budget_s": args.budget_s,
        "argv": sys.argv[1:] if argv is None else argv,
    }
    emit(header)
    if device.type == "cuda":
        emit({"matmul_bf16_tflops": round(matmul_tflops(device), 1)})
        release(device)  # the probe's tensors are not the first baseline's peak memory

    kernels = resolve_kernels(args.kernels)
    in_use = [k for k, v in kernels.items() if v != KERNEL_CHOICES[k][0]]
    checks, checks_line = None, "not run yet" if in_use else "none (no Steel kernel in use)"
    # Per precision: the kernels of its Steel rows (a kernel whose check failed for that precision's dtypes is
    # replaced by its reference), and the note that says so in each of them.
    row_kernels = {p: kernels for p in PRECISIONS}
    ref_note = dict.fromkeys(PRECISIONS, "")
    # Per (model, precision): the settings of its Steel rows once a fallback (compile off, ...) works for one
    # of them, (compile, kernels, label, note); and where one has been tried. A failure is kept to the model
    # and precision it showed in: a custom op's dtypes, an inductor error in one model's blocks.
    fallback: dict[tuple[str, str], tuple[bool, dict, str, str]] = {}
    fallback_tried: set[tuple[str, str]] = set()
    results: list[dict] = []  # every row in run order: measured, failed or skipped
    bases: dict[tuple, dict] = {}
    compiled: set[tuple] = set()
    stop = None  # why every remaining row is skipped

    def record(rec: dict) -> None:
        results.append(rec)
        emit(rec)
        write_atomic(md_path, table(header, checks_line, results))

    def over_budget(est: float) -> str | None:
        if elapsed() + est > args.budget_s:
            return f"skipped: time budget ({elapsed():.0f} s elapsed + ~{est:.0f} s estimated > {args.budget_s:.0f} s)"
        return None

    def failed(rec: dict, e: Exception) -> dict:  # in an `except` block: the traceback goes to the log
        return {**rec, "error": short_error(e), "traceback": traceback.format_exc(), "elapsed_s": round(elapsed(), 1)}

    def warm(r: tuple) -> bool:
        """Whether the first try of Steel row `r` would reuse blocks an earlier row compiled."""
        m, _, v = r
        if v is None or checks is None or stop is not None:
            return False
        c, k, *_ = fallback.get((m, v[3]), (compile_, row_kernels[v[3]]))
        return c and compile_key(m, v, c, k) in compiled

    write_atomic(md_path, table(header, checks_line, results))
    pending = list(rows_plan)
    while pending:
        # NOTE: a row whose compiled blocks exist (the other Llama vocabulary at the same settings) costs
        # seconds, a cold one a compile of a minute or more: the warm ones go first, so a budget that runs
        # out cuts a cold row, not the 151936 MFU row that the 32000 row's compile already paid for.
        model_name, vocab, variant = pending.pop(next((i for i, r in enumerate(pending) if warm(r)), 0))
        name = BASELINE if variant is None else variant[0]
        row = {"model": model_name, "vocab": vocab, "variant": name}
        if variant is not None and in_use and checks is None and stop is None:
            if elapsed() + KERNEL_CHECK_S > args.budget_s:
                checks, checks_line = {}, "skipped (time budget)"
                stop = f"skipped: no time left for the kernel checks ({elapsed():.0f} s elapsed)"
            else:
                checks, checks_line = run_kernel_checks(in_use, args.budget_s)
                for precision in PRECISIONS:
                    failed_checks = [k for k in in_use if not case_ok(checks[k], precision)]
                    row_kernels[precision] = {**kernels, **{k: KERNEL_CHOICES[k][0] for k in failed_checks}}
                    if failed_checks:
                        ref_note[precision] = f"torch reference for {', '.join(failed_checks)} (kernel check failed)"
            write_atomic(md_path, table(header, checks_line, results))  # the checks' outcome, before a row
        if stop is not None:
            record({**row, "skipped": stop})
            continue
        if variant is None:
            if why := over_budget(estimate_row_s(model_name, vocab, None, results, args.warmup + args.steps, False)):
                record({**row, "skipped": why})
                continue
            try:
                res = bases[model_name, vocab] = run_baseline(model_name, shape, vocab, seq, args, device)
            except Exception as e:  # noqa: BLE001 -- an OOM must not lose the other rows
                record(failed(row, e))
                if not cuda_usable(device):
                    stop = f"skipped: CUDA context broken by {model_name}:{vocab} {name}"
                continue
            finally:
                release(device)
            record({**with_ratios(res, None, peak), "elapsed_s": round(elapsed(), 1)})
            continue
        # A Steel row: with the run's settings; after the first Steel row of a model and precision that fails
        # for a reason other than memory (a custom op's fake tensor or dtype, an inductor error: the kernel
        # checks cannot see these, and the later rows would repeat them), that row again with compile off,
        # then also with kernels none; the first of these that works is used by the later Steel rows of that
        # model and precision (both Llama vocabularies: their blocks are the same).
        group = (model_name, variant[3])
        c0, k0, group_label, group_note = fallback.get(group, (compile_, row_kernels[variant[3]], None, ""))
        tries = [(None, c0, k0)]
        while tries:
            label, c, k = tries.pop(0)
            key = compile_key(model_name, variant, c, k)
            attempt = {**row, "fallback": label, "note": f"fallback attempt: {label}"} if label else row
            if why := over_budget(estimate_row_s(model_name, vocab, variant, results, args.warmup + args.steps,
                                                 cold=c and key not in compiled)):
                record({**attempt, "skipped": why})
                break
            try:
                res = run_steel(model_name, shape, vocab, variant, seq, args, device, dict(k), c)
            except Exception as e:  # noqa: BLE001 -- an OOM or compile failure must not lose the other rows
                record(failed(attempt, e))
                if not cuda_usable(device):
                    stop = f"skipped: CUDA context broken by {model_name}:{vocab} {name}"
                    break
                if is_oom(e):  # not a reason to fall back, and no sign whether a fallback would work
                    break
                if group not in fallback_tried:
                    fallback_tried.add(group)
                    tries = fallbacks(c, k)
                    failed_with = f"{model_name}:{vocab} {name} failed with {settings(c, k)}"
                continue
            finally:
                release(device)
            res["cold_compile"] = c and key not in compiled
            compiled.add(key)
            if label:  # this fallback works: the later Steel rows of this model and precision use it
                group_label, group_note = label, f"fallback: {label}, since {failed_with}"
                fallback[group] = (c, k, group_label, group_note)
            if group_label:
                res["fallback"] = group_label
            if note := "; ".join(n for n in (ref_note[variant[3]], group_note) if n):
                res["note"] = note
            res = with_ratios(res, bases.get((model_name, vocab)), peak)
            record({**res, "elapsed_s": round(elapsed(), 1)})
            break

    text = table(header, checks_line, results)
    print(text, flush=True)
    if log_file is not None:
        log_file.write(text)
        log_file.close()
        log_file = None
    return 0 if any("tokens_per_s" in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
