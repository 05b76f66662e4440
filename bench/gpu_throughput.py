"""Training throughput on one GPU: the plain HF eager step vs Steel's own step, in one process.

For each model (a 1.1B dense Llama shape with vocab 32000 and 151936, and steel-1b) this measures
  baseline   the plain HF step of `../shared/bench/hf_baseline.py`: fp32 master weights + bf16 autocast,
             SDPA, fused AdamW, micro-batch 4 x 2048, eager (for steel-1b: SteelForCausalLM, no kernels)
  steel ...  Steel's step: `kernels: all` (fused RMSNorm/RoPE/silu*mul/linear+CE), per-block
             torch.compile and activation checkpointing applied by `steel.train.distributed.parallelize`,
             the loss from the fused CE, and one of two precisions:
               fp32-master  fp32 parameters + bf16 autocast (as the baseline)
               bf16         bf16 parameters; fp32 master weights + fp32 AdamW state (MasterWeightAdamW)
and prints one JSON line per run: step time (median of `--steps`), tokens/s, MFU, peak memory, and the
ratio of tokens/s and of peak memory to the same model's baseline measured in this run.

MFU = tokens/s x FLOPs per token / peak. `mfu` uses the true FLOPs of `steel.model.flops` (what the
model really multiplies); `mfu_6n` uses 6N + 12 L d T with N the non-embedding parameters, as in
issue 5 and hf_baseline.py. Peak: `steel.train.metrics.PEAK_FLOPS` (H100 SXM: 989 TFLOP/s dense bf16).

  python bench/gpu_throughput.py                 # the GPU benchmark (fits one 10-minute call on an H100)
  python bench/gpu_throughput.py --tiny          # CPU smoke run with toy shapes, a few seconds
The log (the same JSON lines plus a summary table) goes to $OUT/gpu_throughput.log when $OUT is set.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch

from steel.kernels import resolve_kernels
from steel.model import SteelCausalityWarning, build_model, load_model_config
from steel.model.flops import flops_per_token
from steel.train.config import ParallelSection
from steel.train.distributed import Dist, parallelize
from steel.train.master_adamw import MasterWeightAdamW
from steel.train.metrics import peak_flops

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
# Steel variants tried after each baseline, most informative first (a time budget may cut the tail):
# (name, micro-batch, activation checkpointing, precision). Same micro-batch as the baseline first,
# so its peak memory compares like for like; then bigger micro-batches.
STEEL_VARIANTS = [
    ("steel fp32-master mb4", 4, False, "fp32-master"),
    ("steel bf16 mb4", 4, False, "bf16"),
    ("steel bf16 mb8", 8, False, "bf16"),
    ("steel bf16 mb16 ac", 16, True, "bf16"),
    # The memory row for vocab 151936: 16 bytes/parameter of weights + fp32 master + AdamW state are
    # already ~46% of HF's 55 GB there, so <= 60% at micro-batch 4 needs the activations checkpointed.
    ("steel bf16 mb4 ac", 4, True, "bf16"),
]
TINY_VARIANTS = [("steel fp32-master mb2", 2, False, "fp32-master"), ("steel bf16 mb2 ac", 2, True, "bf16")]
# Which variants run by default, per model, to fit one 10-minute call: compiling the 22 Llama blocks
# once per precision / micro-batch / AC setting is most of the time; the second Llama vocabulary reuses
# those compiled blocks (the vocabulary only changes the embedding and head), steel-1b compiles anew.
DEFAULT_VARIANTS = {
    "llama:32000": ["steel fp32-master mb4", "steel bf16 mb4", "steel bf16 mb8", "steel bf16 mb16 ac"],
    "llama:151936": ["steel fp32-master mb4", "steel bf16 mb4", "steel bf16 mb4 ac", "steel bf16 mb8"],
    "steel-1b": ["steel bf16 mb4", "steel bf16 mb8"],
}

log_file = None


def emit(obj: dict) -> None:
    line = json.dumps(obj)
    print(line, flush=True)
    if log_file is not None:
        log_file.write(line + "\n")
        log_file.flush()


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


def steel_config(model: str, shape: str, vocab: int, kernels: str):
    """SteelConfig of `model`: `llama` = the Llama shape as a Steel SwiGLU model (same parameters)."""
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
    n = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    return float(
        flops_per_token(cfg, seq)["true"]
    ), 6 * n + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq


# --- optimizers --------------------------------------------------------------------------------------
class FP32Master:
    """fp32 parameters (the model's own), fused AdamW, grad clipping at 1.0: hf_baseline's optimizer."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=3e-4, fused=device.type == "cuda")

    def step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


class BF16Params:
    """bf16 model parameters and gradients; fp32 master weights and AdamW state in
    `steel.train.master_adamw.MasterWeightAdamW` (16 bytes per parameter, fp32 gradients made one
    bucket at a time), grad clipping at 1.0."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        model.to(torch.bfloat16)
        self.opt = MasterWeightAdamW(model.parameters(), lr=3e-4, fused=device.type == "cuda")

    def step(self) -> None:
        self.opt.clip_grad_norm_(1.0)
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
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mem_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0


def result_row(model_name, vocab, variant, mb, seq, t, loss, device, true_fpt, six_fpt) -> dict:
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
    }


def run_baseline(model_name: str, shape: str, vocab: int, mb: int, seq: int, args, device) -> dict:
    torch.manual_seed(0)
    with torch.device(device):
        if model_name == "llama":
            model, cfg = hf_llama(shape, vocab)
        else:  # steel-1b has no stock HF class: the Steel model without kernels or compile is its eager step
            cfg = steel_config(model_name, shape, vocab, "none")
            model = build_model(cfg)
    model.train()
    opt = FP32Master(model, device)
    x = torch.randint(0, vocab, (mb, seq), device=device)

    def step():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            out = model(input_ids=x, labels=x)
        out.loss.backward()
        opt.step()
        return out.loss.detach()

    t, loss = time_steps(step, args.steps, args.warmup, device)
    true_fpt, six_fpt = flops(cfg, model, seq)
    res = result_row(model_name, vocab, "eager (baseline)", mb, seq, t, loss, device, true_fpt, six_fpt)
    return res  # model, optimizer and batch are freed on return; main() then calls release()


def run_steel(model_name: str, shape: str, vocab: int, variant: tuple, seq: int, args, device) -> dict:
    name, mb, ac, precision = variant
    torch.manual_seed(0)
    cfg = steel_config(model_name, shape, vocab, args.kernels)
    with torch.device(device):
        model = build_model(cfg)
    model.train()
    true_fpt, six_fpt = flops(cfg, model, seq)
    opt = BF16Params(model, device) if precision == "bf16" else FP32Master(model, device)
    compile_ = args.compile if args.compile is not None else device.type == "cuda"
    d = Dist(rank=0, world_size=1, local_rank=0, device=device, mode="none")
    model = parallelize(model, ParallelSection(mode="none", compile=compile_, activation_checkpointing=ac), d)
    autocast = precision == "fp32-master"
    x = torch.randint(0, vocab, (mb, seq), device=device)

    def step():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(input_ids=x, labels=x)  # labels: the model's fused linear + CE, no (B, T, V) logits
        out.loss.backward()
        opt.step()
        return out.loss.detach()

    t0 = time.perf_counter()
    step()  # first call: compiles; not timed
    compile_s = time.perf_counter() - t0
    t, loss = time_steps(step, args.steps, args.warmup, device)
    res = {
        **result_row(model_name, vocab, name, mb, seq, t, loss, device, true_fpt, six_fpt),
        "compile": compile_,
        "activation_checkpointing": ac,
        "precision": precision,
        "kernels": args.kernels,
        "first_step_s": round(compile_s, 1),
    }
    return res  # model, optimizer and batch are freed on return; main() then calls release()


def with_ratios(res: dict, base: dict | None, peak: float | None) -> dict:
    tps = res["tokens_per_s"]
    res["mfu"] = round(tps * res["true_flops_per_token"] / peak, 4) if peak else None
    res["mfu_6n"] = round(tps * res["six_n_flops_per_token"] / peak, 4) if peak else None
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


def main(argv: list[str] | None = None) -> int:
    global log_file
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--tiny", action="store_true", help="toy shapes and vocabularies, seq 32, one step: a CPU smoke run"
    )
    ap.add_argument(
        "--models",
        default=None,
        help="comma list of llama:VOCAB and steel-1b (default llama:32000,llama:151936,steel-1b; "
        "with --tiny llama:1000,llama:3001,steel-1b at toy size)",
    )
    ap.add_argument(
        "--variants",
        default=None,
        help="comma list of Steel variant names for every model (default: DEFAULT_VARIANTS per model)",
    )
    ap.add_argument("--seq", type=int, default=None, help="sequence length (default 2048; 64 with --tiny)")
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
        default=540.0,
        help="skip the remaining runs once this many seconds have passed (one device call is 600 s)",
    )
    ap.add_argument("--log", default=None, help="log file (default $OUT/gpu_throughput.log when $OUT is set)")
    args = ap.parse_args(argv)
    shape = "tiny" if args.tiny else "1b"
    seq = args.seq or (32 if args.tiny else 2048)
    args.steps = args.steps or (1 if args.tiny else 10)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.tiny else 3)
    args.models = args.models or (
        "llama:1000,llama:3001,steel-1b" if args.tiny else "llama:32000,llama:151936,steel-1b"
    )
    base_mb = 2 if args.tiny else 4
    known = TINY_VARIANTS if args.tiny else STEEL_VARIANTS
    if args.variants:
        wanted = args.variants.split(",")
        unknown = set(wanted) - {v[0] for v in known}
        if unknown:
            ap.error(f"--variants: unknown {sorted(unknown)}; known: {[v[0] for v in known]}")

    def variants_for(spec: str) -> list[tuple]:
        if args.variants:
            return [v for v in known if v[0] in wanted]
        if args.tiny:
            return known
        names = DEFAULT_VARIANTS.get(spec, [v[0] for v in known])
        return [v for v in known if v[0] in names]
    log_path = args.log or (
        str(Path(os.environ["OUT"]) / "gpu_throughput.log") if os.environ.get("OUT") else None
    )
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "w")  # noqa: SIM115 -- module-level sink for emit(), closed at the end

    # steel-1b's soft_moe_v3 reads the future: known, and irrelevant to throughput
    warnings.filterwarnings("ignore", category=SteelCausalityWarning)
    # several models, precisions and micro-batches in one process; `cache_size_limit` before torch 2.7
    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    setattr(torch._dynamo.config, limit, 64)
    torch._dynamo.config.automatic_dynamic_shapes = False  # a static graph per micro-batch: faster code
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    peak, device_name = peak_flops(device)
    emit(
        {
            "torch": torch.__version__,
            "device": device_name,
            "peak_tflops": peak and peak / 1e12,
            "seq": seq,
            "shape": shape,
            "argv": sys.argv[1:] if argv is None else argv,
        }
    )
    if device.type == "cuda":
        emit({"matmul_bf16_tflops": round(matmul_tflops(device), 1)})

    start = time.perf_counter()
    results = []
    for spec in args.models.split(","):
        model_name, _, vocab = spec.partition(":")
        if model_name not in ("llama", "steel-1b") or (model_name == "llama" and not vocab.isdigit()):
            ap.error(f"--models: {spec!r} is neither llama:VOCAB nor steel-1b")
        vocab = int(vocab) if vocab else (512 if args.tiny else 151936)
        base = None
        for v in [None, *variants_for(spec)]:
            if time.perf_counter() - start > args.budget_s:
                emit(
                    {
                        "model": model_name,
                        "vocab": vocab,
                        "variant": "baseline" if v is None else v[0],
                        "skipped": f"time budget of {args.budget_s:.0f} s spent",
                    }
                )
                continue
            try:
                if v is None:
                    res = run_baseline(model_name, shape, vocab, base_mb, seq, args, device)
                    base = res
                else:
                    res = run_steel(model_name, shape, vocab, v, seq, args, device)
            except Exception as e:  # noqa: BLE001 -- an OOM or compile failure must not lose the other rows
                emit(
                    {
                        "model": model_name,
                        "vocab": vocab,
                        "variant": "baseline" if v is None else v[0],
                        "error": repr(e)[:400],
                    }
                )
                continue
            finally:
                release(device)
            res = with_ratios(res, None if v is None else base, peak)
            results.append(res)
            emit(res)

    lines = [
        (
            "| model | vocab | variant | tokens/s | MFU (true) | MFU (6N+12LdT) | peak GiB "
            "| x baseline tok/s | x baseline mem |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        pct = lambda f: f"{100 * f:.1f}%" if f is not None else "n/a"
        base = "speedup_vs_baseline" not in r  # the baseline row itself
        speed = 1.0 if base else r["speedup_vs_baseline"]
        mem = r.get("mem_vs_baseline", "n/a (no GPU)" if r["peak_mem_gib"] == 0 else 1.0)
        lines.append(
            f"| {r['model']} | {r['vocab']} | {r['variant']} | {r['tokens_per_s']:,} | {pct(r['mfu'])} "
            f"| {pct(r['mfu_6n'])} | {r['peak_mem_gib']} | {speed} | {mem} |"
        )
    table = "\n".join(lines)
    print(table, flush=True)
    if log_file is not None:
        log_file.write(table + "\n")
        log_file.close()
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
