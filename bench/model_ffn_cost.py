"""Cost per token of one steel-1b FFN layer, per variant: analytic training FLOPs and measured time.

One FFN layer at steel-1b width (C = 1792, SENet experts of inner width 448, 6 experts x 1 slot) runs
forward + backward on a (1, T, C) input. Times are the median of --runs runs, reported per 1k tokens and
as a ratio to soft_moe_v3 measured in the same run. FLOPs per token come from steel.model.flops (the
numbers `steel model info` prints), times 3 for forward + backward.

Usage: .venv/bin/python bench/model_ffn_cost.py [--seq-len 512] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from steel.model import load_model_config
from steel.model.flops import steel_ffn_macs
from steel.model.modeling_steel import make_ffn

VARIANTS = [
    ("soft_moe_v3", {}),
    ("soft_moe_causal", {"moe_chunk_size": 1}),
    ("soft_moe_causal", {"moe_chunk_size": 64}),
    ("soft_moe_causal", {"moe_chunk_size": 512}),
    ("soft_moe_v1", {}),
    ("senet", {}),
    ("swiglu", {"intermediate_size": 3584}),  # steel-1b-dense's FFN
]


def time_layer(ffn: torch.nn.Module, x: torch.Tensor, runs: int) -> float:
    times = []
    for i in range(runs + 1):  # first run warms up allocators and caches, not counted
        x.grad = None
        t = time.perf_counter()
        ffn(x).sum().backward()
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    T = args.seq_len
    rows = []
    for ffn_type, extra in VARIANTS:
        cfg = load_model_config("steel-1b", [f"ffn_type={ffn_type}", *(f"{k}={v}" for k, v in extra.items())])
        torch.manual_seed(0)
        ffn = make_ffn(cfg)
        x = torch.randn(1, T, cfg.hidden_size, requires_grad=True)
        secs = time_layer(ffn, x, args.runs)
        flops = 3 * 2 * steel_ffn_macs(cfg, T)
        name = ffn_type + "".join(f" c={v}" for k, v in extra.items() if k == "moe_chunk_size")
        if ffn_type == "swiglu":
            name += " (dense, I=3584)"
        rows.append((name, flops, secs * 1000 / T * 1000, sum(p.numel() for p in ffn.parameters())))
        print(f"{name}: {secs * 1e3:.1f} ms", flush=True)
    base = rows[0][2]
    print(f"\nOne steel-1b FFN layer, forward + backward, T = {T}, median of {args.runs}, "
          f"{args.threads} threads, 2-core CPU")
    print("| FFN | params | train FLOPs/token (analytic) | ms per 1k tokens | time vs v3 |")
    print("|---|---|---|---|---|")
    for name, flops, ms, params in rows:
        print(f"| {name} | {params / 1e6:.2f} M | {flops / 1e6:.2f} M | {ms:.1f} | {ms / base:.2f}x |")


if __name__ == "__main__":
    main()
