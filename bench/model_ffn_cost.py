"""Cost per token of one steel-1b FFN layer, per variant: analytic training FLOPs and measured time.

One FFN layer at steel-1b width (C = 1792, SENet experts of inner width 448, 6 experts x 1 slot) runs
forward + backward on a (1, T, C) input. Times are the median of --runs runs, reported per 1k tokens and
as a ratio to soft_moe_v3 measured in the same run. FLOPs per token come from steel.model.flops (the
numbers `steel model info` prints), times 3 for forward + backward.

With --docs N (N > 1) it then times soft_moe_causal c=64 on a row of N documents (random lengths, seed 0)
with and without document masking, runs interleaved (the machine is shared: sequential medians drift by
2x), and prints the ratio. Document masking gives each document its own chunk grid, so the experts run on
sum_d ceil(L_d / 64) groups of slots instead of ceil(T / 64); the layout (built once per forward by the
model, for every layer) is timed separately.

Usage: .venv/bin/python bench/model_ffn_cost.py [--seq-len 512] [--runs 5] [--docs 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from steel.model import load_model_config
from steel.model.flops import steel_ffn_macs
from steel.model.modeling_steel import document_ids, make_ffn

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


def document_mask_ratio(T: int, n_docs: int, runs: int) -> None:
    cfg = load_model_config("steel-1b", ["ffn_type=soft_moe_causal", "moe_chunk_size=64"])
    torch.manual_seed(0)
    ffn = make_ffn(cfg)
    x = torch.randn(1, T, cfg.hidden_size, requires_grad=True)
    cuts = torch.randperm(T - 1, generator=torch.Generator().manual_seed(0))[: n_docs - 1].sort().values
    ids = torch.ones(1, T, dtype=torch.long)
    ids[0, cuts] = 0  # EOS (id 0 here) ends a document
    t = time.perf_counter()
    layout = ffn.document_layout(document_ids(ids, 0), 64)
    layout_ms = 1e3 * (time.perf_counter() - t)
    lengths = torch.diff(torch.cat([torch.tensor([-1]), cuts, torch.tensor([T - 1])])).tolist()
    times = {"one sequence": [], "document mask": []}
    for i in range(runs + 1):  # interleaved; the first round warms up, not counted
        for name, kwargs in (("one sequence", {}), ("document mask", {"layout": layout})):
            x.grad = None
            t = time.perf_counter()
            ffn(x, **kwargs).sum().backward()
            if i:
                times[name].append(time.perf_counter() - t)
    print(f"\nsoft_moe_causal c=64, T = {T}, documents {lengths}: {layout['G']} slot groups with the "
          f"document mask vs {-(-T // 64)} without; layout {layout_ms:.1f} ms (once per forward); "
          f"interleaved, {runs} runs")
    print("| c=64 | median ms | min ms |")
    print("|---|---|---|")
    for name, v in times.items():
        print(f"| {name} | {statistics.median(v) * 1e3:.1f} | {min(v) * 1e3:.1f} |")
    med = statistics.median(times["document mask"]) / statistics.median(times["one sequence"])
    low = min(times["document mask"]) / min(times["one sequence"])
    print(f"document mask / one sequence: {med:.2f}x (medians), {low:.2f}x (minima)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--docs", type=int, default=0,
                    help="then time c=64 with and without document masking on a row of this many documents")
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
    if args.docs > 1:
        document_mask_ratio(T, args.docs, args.runs)


if __name__ == "__main__":
    main()
