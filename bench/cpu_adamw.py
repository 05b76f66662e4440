"""Seconds per CPU AdamW step: fused (what `build_optimizer` picks on the CPU since 2026-12-07) vs for-loop (torch's default).

NOTE: torch's default on the CPU is the per-tensor for-loop, not foreach (its foreach kernels are for GPUs:
`torch.optim.optimizer._default_to_fused_or_foreach` picks neither for CPU tensors); that loop is what CPU runs
used before fused.

Parameters shaped like a Llama (embedding, untied head, per layer q/k/v/o and gate/up/down, norms), with
random gradients; both optimizers step the same parameters from the same state, alternating, after one
warm-up step each. Median of `--runs` steps. NOTE: timed in process CPU time, not wall time: on a shared
machine wall time mostly measures the neighbours' load (with more than one thread the CPU time of all
threads adds up, which is the work done).

    .venv/bin/python bench/cpu_adamw.py [--hidden 768 --layers 4 --runs 7 --threads 1 --param-dtype fp32]
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import torch

from steel.train.config import OptimSection
from steel.train.master_adamw import MasterWeightAdamW
from steel.train.optim import build_optimizer


def make_model(hidden: int, layers: int, vocab: int, dtype: torch.dtype) -> torch.nn.Module:
    inter = 8 * hidden // 3 // 64 * 64
    shapes = [(vocab, hidden), (vocab, hidden), (hidden,)]
    for _ in range(layers):
        shapes += [(hidden, hidden)] * 4 + [(inter, hidden)] * 2 + [(hidden, inter)] + [(hidden,)] * 2
    g = torch.Generator().manual_seed(0)
    m = torch.nn.Module()
    m.ps = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(s, generator=g).to(dtype) * 0.02) for s in shapes])
    for p in m.ps:
        p.grad = (torch.randn(p.shape, generator=g) * 1e-3).to(dtype)
    return m


def is_fused(opt: torch.optim.Optimizer) -> bool:
    return bool(opt.fused if isinstance(opt, MasterWeightAdamW) else opt.param_groups[0]["fused"])


def timed_step(opt: torch.optim.Optimizer, model: torch.nn.Module, grads: list[torch.Tensor]) -> float:
    for p, gr in zip(model.parameters(), grads):
        p.grad = gr.clone()  # MasterWeightAdamW frees the gradients it used
    t0 = time.process_time()
    opt.step()
    return time.process_time() - t0


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--param-dtype", choices=["fp32", "bf16"], default="fp32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.param_dtype == "bf16" else torch.float32
    cfg = OptimSection(lr=3e-4)
    cpu = torch.device("cpu")
    models = {name: make_model(args.hidden, args.layers, args.vocab, dtype) for name in ("fused", "for-loop")}
    grads = [p.grad.clone() for p in models["fused"].parameters()]
    opts = {}
    # build_optimizer with each implementation (fused=None: torch's default, the for-loop on the CPU)
    for name, choice in (("fused", True), ("for-loop", None)):
        with mock.patch("steel.train.optim.adamw_fused", lambda device, choice=choice: choice):
            opts[name] = build_optimizer(models[name], cfg, cpu, master_weights=args.param_dtype == "bf16")
    assert is_fused(opts["fused"]) and not is_fused(opts["for-loop"])
    times: dict[str, list[float]] = {"fused": [], "for-loop": []}
    for i in range(args.runs + 1):  # the first step of each (state allocation) is not counted
        for name in ("for-loop", "fused"):
            t = timed_step(opts[name], models[name], grads)
            if i:
                times[name].append(t)
    n = sum(p.numel() for p in models["fused"].parameters())
    diff = max((a.float() - b.float()).abs().max().item()
               for a, b in zip(models["fused"].parameters(), models["for-loop"].parameters()))
    f, b = statistics.median(times["fused"]), statistics.median(times["for-loop"])
    print(f"parameters: {n / 1e6:.1f}M {args.param_dtype}, threads: {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"for-loop AdamW: {b:.4f} s/step  (runs: {', '.join(f'{x:.4f}' for x in times['for-loop'])})")
    print(f"fused AdamW:    {f:.4f} s/step  (runs: {', '.join(f'{x:.4f}' for x in times['fused'])})")
    print(f"speedup: {b / f:.2f}x; max |fused - for-loop| weight difference after {args.runs + 1} steps: {diff:.2e}")


if __name__ == "__main__":
    main_()
