"""What an export's `generation_config.json` `suppress_tokens` (the ids past the tokenizer, which HF's generate must
never pick) costs per generated token, next to what HF's sampling does per token anyway.

The logits processors transformers builds from the generation config, timed on CPU fp32 scores of Qwen's 151,936
rows: `suppress_tokens` (SuppressTokensLogitsProcessor: an isin of every row against the list, each step) and the
same ids as single-token `bad_words_ids` (NoBadWordsLogitsProcessor: a bias vector built at the first step, added
each step), for a 24k-id gap (a 128,000-id tokenizer) and Qwen's own 290; the baseline is the softmax +
multinomial of one sampling step over the same scores. Also the JSON's size, and what every generate call costs
whatever it is passed: HF's `_prepare_generation_config` deep-copies the model's generation config (`to_dict`), the
list included (`--tokenizer 6000`: a tokenizer of one's own in Qwen's rows, 145,936 ids).

Usage: .venv/bin/python bench/export_suppress_tokens.py [--vocab 151936] [--tokenizer 128000] [--batch 1]
       [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import GenerationConfig
from transformers.generation.logits_process import NoBadWordsLogitsProcessor, SuppressTokensLogitsProcessor


def per_call_us(fn, scores: torch.Tensor, repeat: int) -> float:
    for _ in range(5):
        fn(scores)
    best = float("inf")
    for _ in range(3):  # the best of 3 rounds: the machine is shared
        t = time.perf_counter()
        for _ in range(repeat):
            fn(scores)
        best = min(best, (time.perf_counter() - t) / repeat)
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=int, default=151_936)
    ap.add_argument("--tokenizer", type=int, default=128_000, help="ids the tokenizer has (the gap: vocab - this)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    torch.manual_seed(0)
    scores = torch.randn(args.batch, args.vocab)
    ids = torch.zeros(args.batch, 8, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)

    def sample(s):  # what one sampling step does anyway
        return torch.multinomial(torch.softmax(s, dim=-1), 1, generator=gen)

    base = per_call_us(sample, scores, args.repeat)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; scores ({args.batch}, {args.vocab}) fp32 CPU")
    print(f"baseline, softmax + multinomial per step: {base:.0f} us")
    for tok in (args.tokenizer, 151_646):
        gap = list(range(tok, args.vocab))
        sup = SuppressTokensLogitsProcessor(gap)
        t0 = time.perf_counter()
        bad = NoBadWordsLogitsProcessor([[i] for i in gap], eos_token_id=None)
        bad(ids, scores.clone())  # builds its bias vector (first step)
        build = (time.perf_counter() - t0) * 1e3
        s = per_call_us(lambda x, p=sup: p(ids, x), scores, args.repeat)
        b = per_call_us(lambda x, p=bad: p(ids, x), scores, args.repeat)
        size_s = len(json.dumps({"suppress_tokens": gap}))
        size_b = len(json.dumps({"bad_words_ids": [[i] for i in gap]}))
        config = GenerationConfig(bad_words_ids=[[i] for i in gap])
        t0 = time.perf_counter()
        config.to_dict()  # (HF's copy at each generate call)
        copy_ms = (time.perf_counter() - t0) * 1e3
        print(f"gap {len(gap):,} ids ({tok:,}-{args.vocab - 1:,}): suppress_tokens {s:.0f} us/step "
              f"({s / base:.2f}x the sampling step), {size_s / 1e3:.0f} KB of JSON; bad_words_ids {b:.0f} us/step "
              f"({b / base:.2f}x) after {build:.0f} ms at the first, {size_b / 1e3:.0f} KB; the config's copy at "
              f"each generate call {copy_ms:.0f} ms")


if __name__ == "__main__":
    main()
