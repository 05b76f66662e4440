"""The causality finding, measured: small models of each FFN variant trained on real text.

For each variant, one tiny model (same seed, same data order) is trained for --steps AdamW steps on
byte-level text from ../shared/data (tinyshakespeare + a classical Chinese novel), then on held-out text:
1. teacher-forced loss: one forward over the whole window, as training computes it;
2. prefix-only ("honest") loss: token t+1 predicted by a forward over tokens 0..t only, as generation
   without a KV cache sees it. For a causal model (1) = (2) up to float noise; a model that reads the
   future scores well on (1) and is worse on (2);
3. the leak of `steel model check-causal`: max |logit change| at positions <= t when tokens after t change.

Usage: .venv/bin/python bench/model_causality.py [--steps 300] [--out runs/bench/model_causality.json]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from pathlib import Path

import torch
import zstandard

from steel.model import build_model, load_model_config
from steel.model.causality import check_causal

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "data"
VARIANTS = [
    ("soft_moe_v3", {}),
    ("soft_moe_v2", {}),
    ("soft_moe_causal", {"moe_chunk_size": 1}),
    ("soft_moe_causal", {"moe_chunk_size": 16}),
    ("soft_moe_v1", {}),
    ("senet", {}),
]


def read_bytes(path: Path, limit: int) -> bytes:
    out = bytearray()
    with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as r:
        for line in io.TextIOWrapper(r, encoding="utf-8"):
            out += json.loads(line)["text"].encode("utf-8") + b"\n"
            if len(out) >= limit:
                break
    return bytes(out[:limit])


def windows(data: torch.Tensor, n: int, seq_len: int, g: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, len(data) - seq_len - 1, (n,), generator=g)
    return torch.stack([data[s : s + seq_len + 1] for s in starts.tolist()])  # (n, T+1)


def variant_name(ffn: str, extra: dict) -> str:
    return ffn + "".join(f" c={v}" for v in extra.values())


NAMES = [variant_name(ffn, extra) for ffn, extra in VARIANTS]


def config(ffn: str, extra: dict, seq_len: int):
    # steel-1b's shape family at toy size: SENet experts, 4 experts x 1 slot, untied embeddings, bytes as tokens.
    fields = dict(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, mlp_div_ratio=4, num_experts=4, slots_per_expert=1, ffn_type=ffn,
                  max_position_embeddings=seq_len, eos_token_id=10, **extra)
    return load_model_config({"model_type": "steel", **fields})


@torch.no_grad()
def prefix_only_loss(model, batch: torch.Tensor) -> float:
    """Mean CE of token t+1 from a forward over tokens 0..t only (t = 0..T-1)."""
    total, T = 0.0, batch.shape[1] - 1
    for t in range(T):
        logits = model(input_ids=batch[:, : t + 1], use_cache=False).logits[:, -1].float()
        total += torch.nn.functional.cross_entropy(logits, batch[:, t + 1], reduction="sum").item()
    return total / (T * batch.shape[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-seqs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "model_causality.json")
    ap.add_argument("--variants", default="",
                    help=f"comma-separated subset of {', '.join(repr(n) for n in NAMES)} (default: all)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared 2-core machine more threads oversubscribe and crawl)")
    args = ap.parse_args()
    # NOTE: a name not in the list ran no variant and wrote an empty table over --out
    unknown = [n for n in args.variants.split(",") if n and n not in NAMES] if args.variants else []
    if unknown:
        ap.error(f"--variants: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(map(repr, NAMES))}")
    torch.set_num_threads(args.threads)

    text = read_bytes(SHARED / "pretrain_en" / "en_tinyshakespeare.jsonl.zst", 600_000)
    text += read_bytes(SHARED / "pretrain_zh" / "zh_vernacular_novels.jsonl.zst", 600_000)
    data = torch.frombuffer(bytearray(text), dtype=torch.uint8).long()
    # Held-out: every 10th block of 4 KiB, never trained on.
    blocks = data[: len(data) // 4096 * 4096].view(-1, 4096)
    train, held = blocks[torch.arange(len(blocks)) % 10 != 0].reshape(-1), blocks[::10].reshape(-1)
    eval_batch = windows(held, args.eval_seqs, args.seq_len, torch.Generator().manual_seed(123))

    results = []
    for ffn, extra in VARIANTS:
        name = variant_name(ffn, extra)
        if args.variants and name not in args.variants.split(","):
            continue
        torch.manual_seed(0)
        model = build_model(config(ffn, extra, args.seq_len))
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        model.train()
        for step in range(args.steps):
            lr = args.lr * min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
            for group in opt.param_groups:
                group["lr"] = lr
            batch = windows(train, args.batch, args.seq_len, g)
            loss = model(input_ids=batch, labels=batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        train_s = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            tf = model(input_ids=eval_batch, labels=eval_batch).loss.item()
        honest = prefix_only_loss(model, eval_batch)
        leak = check_causal(model, 256, seq_len=args.seq_len, batch=2, positions=list(range(0, args.seq_len - 1, 7)))
        row = dict(variant=name, train_loss_last=loss.item(), teacher_forced=tf, prefix_only=honest,
                   max_leak=leak.max_leak, leak_t=leak.worst_t, logit_scale=leak.logit_scale, train_s=train_s)
        results.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n{args.steps} steps, batch {args.batch} x {args.seq_len} bytes, 2-core CPU")
    print("| variant | teacher-forced loss | prefix-only loss | gap | max logit leak (at t) | max abs logit |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['teacher_forced']:.3f} | {r['prefix_only']:.3f} | "
              f"{r['prefix_only'] - r['teacher_forced']:+.3f} | {r['max_leak']:.2e} (t={r['leak_t']}) | "
              f"{r['logit_scale']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(args={k: str(v) for k, v in vars(args).items()}, results=results), indent=1))


if __name__ == "__main__":
    main()
