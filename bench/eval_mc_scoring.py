"""Multiple-choice scoring cost: LM head at the last position only vs over every position, and batching.

Scores the same prompts three ways with a small Steel model over Qwen's 151,936-token vocabulary
(where the LM head dominates a small model's cost, as it does for eval of any ~1B model on CPU):
  baseline   one prompt at a time, full logits (B, T, V) then the last row (what a naive loop does)
  head-last  one prompt at a time, logits only at the last position (`logits_to_keep=1`)
  batched    `steel.eval.mc.last_logits`: left-padded batches + head at the last position
Prints the median of several runs and each variant's speed-up over the baseline measured in the same run.

    .venv/bin/python bench/eval_mc_scoring.py [--prompts 32] [--len 512] [--batch 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from steel.eval.mc import last_logits
from steel.model import build_model, load_model_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--len", type=int, default=512, help="mean prompt length (lengths vary +-25%%)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    cfg = load_model_config("tiny")
    cfg.vocab_size, cfg.ffn_type, cfg.hidden_size, cfg.intermediate_size = 151936, "soft_moe_v1", 256, 512
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(0)
    lens = torch.randint(int(args.len * 0.75), int(args.len * 1.25), (args.prompts,), generator=g).tolist()
    prompts = [torch.randint(0, 151000, (n,), generator=g).tolist() for n in lens]

    @torch.no_grad()
    def baseline():
        return torch.stack([model(input_ids=torch.tensor([p])).logits[0, -1] for p in prompts])

    @torch.no_grad()
    def head_last():
        return torch.stack(
            [model(input_ids=torch.tensor([p]), logits_to_keep=1).logits[0, -1] for p in prompts]
        )

    def batched():
        out = []
        for i in range(0, len(prompts), args.batch):
            out.append(last_logits(model, prompts[i : i + args.batch], 1, 0)[:, -1])
        return torch.cat(out)

    ref = baseline()
    # NOTE: same argmax is what scoring needs; padding changes fp32 summation order only.
    assert torch.equal(ref.argmax(-1), head_last().argmax(-1)) and torch.equal(
        ref.argmax(-1), batched().argmax(-1)
    )
    times: dict[str, list[float]] = {"baseline": [], "head-last": [], "batched": []}
    for _ in range(args.repeats):
        for name, fn in (("baseline", baseline), ("head-last", head_last), ("batched", batched)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["baseline"])
    print(
        f"{args.prompts} prompts of ~{args.len} tokens, vocab 151936, torch threads {torch.get_num_threads()}"
    )
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:10s} median {m:.3f} s  ({args.prompts / m:.1f} prompts/s)  speed-up x{base / m:.2f}")


if __name__ == "__main__":
    main()
