"""Tokenizer figures: compression of trained BPEs vs Qwen's vocabulary, and encode speed per engine.

1. Compression: characters per token on held-out Chinese, English and code for byte-level BPEs trained
   with `steel.tokenizer.train` on the shared data (every 10th document / stdlib file held out) next to
   Qwen's 151,646-id vocabulary.
2. Speed: MB/s (UTF-8 bytes) encoding all of ../shared/data/pretrain_zh with HF `tokenizers`
   `encode_batch` (the baseline), `encode_batch_fast`, tiktoken `encode_ordinary_batch` over the same
   ranks, and steel's `load_encoder` (auto engine, and num_threads=1 as in data workers); median of
   --repeats interleaved rounds, printed as ratios to the baseline measured in the same run. The ids
   of every engine are checked identical.

    .venv/bin/python bench/tokenizer_compression.py [--vocab-sizes 32000 64000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "data"


def stdlib_code() -> list[str]:
    root = Path(os.__file__).parent
    skip = {"test", "tests", "site-packages", "idlelib"}
    files = sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts))
    return [p.read_text(encoding="utf-8", errors="replace") for p in files]


def load_corpus() -> dict[str, list[str]]:
    from steel.tokenizer.train import expand_inputs, iter_corpus

    return {
        "zh": list(iter_corpus(expand_inputs([SHARED / "pretrain_zh"]))),
        "en": list(iter_corpus(expand_inputs([SHARED / "pretrain_en"]))),
        "code": stdlib_code(),
    }


def split(docs: list[str]) -> tuple[list[str], list[str]]:
    """Every 10th document held out, the rest for training."""
    return [d for i, d in enumerate(docs) if i % 10], docs[::10]


def chars_per_token(encode_batch, texts: list[str]) -> float:
    return sum(map(len, texts)) / sum(map(len, encode_batch(texts)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-sizes", type=int, nargs="*", default=[32000, 64000])
    ap.add_argument(
        "--code-train-chars", type=int, default=3_000_000, help="cap on stdlib code in the training mix"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-compression", action="store_true")
    args = ap.parse_args()
    if not (SHARED / "pretrain_zh").is_dir():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 2

    from importlib.metadata import version

    from tokenizers import Tokenizer

    from steel.tokenizer.engine import load_encoder
    from steel.tokenizer.qwen import build_qwen_tokenizer, save_tokenizer_dir
    from steel.tokenizer.train import train_bpe

    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
        # NOTE: the installed versions as pip knows them: tiktoken < 0.8 has no `__version__` (pyproject allows 0.7)
        f"tokenizers {version('tokenizers')}, tiktoken {version('tiktoken')}"
    )
    corpus = load_corpus()
    work = Path(tempfile.mkdtemp(prefix="steel-tok-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # a Qwen tokenizer and the trained BPEs: left behind before
    qwen_dir = build_qwen_tokenizer(work / "qwen")
    qwen = load_encoder(qwen_dir)

    if not args.skip_compression:
        train_docs, held = {}, {}
        for kind, docs in corpus.items():
            train_docs[kind], held[kind] = split(docs)
        code_train, n = [], 0
        for d in train_docs["code"]:
            if n >= args.code_train_chars:
                break
            code_train.append(d)
            n += len(d)
        train_docs["code"] = code_train
        sizes = {k: sum(map(len, v)) for k, v in train_docs.items()}
        print("training mix (chars): " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in sizes.items()))
        print(
            "held out (chars):     "
            + ", ".join(f"{k} {sum(map(len, v)) / 1e6:.2f} M" for k, v in held.items())
        )
        rows = []
        for vocab in args.vocab_sizes:
            t0 = time.perf_counter()
            tok = train_bpe((d for k in ("zh", "en", "code") for d in train_docs[k]), vocab)
            train_s = time.perf_counter() - t0
            out = work / f"bpe{vocab}"
            save_tokenizer_dir(tok, out)
            enc = load_encoder(out)
            rows.append((f"trained BPE {tok.get_vocab_size():,} (train {train_s:.0f} s)", enc))
        rows.append(("Qwen 151,646", qwen))
        print()
        print(f"{'chars/token on held-out':<38}{'zh':>8}{'en':>8}{'code':>8}")
        for name, enc in rows:
            cpt = [chars_per_token(enc.encode_batch, held[k]) for k in ("zh", "en", "code")]
            print(f"{name:<38}" + "".join(f"{c:>8.3f}" for c in cpt))

    if not args.skip_speed:
        texts = corpus["zh"]
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        hf = Tokenizer.from_file(str(qwen_dir / "tokenizer.json"))
        hf.encode_special_tokens = True  # ordinary text, as the pipeline encodes it
        tt = qwen._tt
        one_thread = load_encoder(qwen_dir, num_threads=1)  # what a data worker process uses
        runs = {
            "HF tokenizers encode_batch (baseline)": lambda: [
                e.ids for e in hf.encode_batch(texts, add_special_tokens=False)
            ],
            "HF tokenizers encode_batch_fast": lambda: [
                e.ids for e in hf.encode_batch_fast(texts, add_special_tokens=False)
            ],
            "tiktoken encode_ordinary_batch": lambda: tt.encode_ordinary_batch(texts),
            f"steel load_encoder ({qwen.engine}) encode_batch": lambda: qwen.encode_batch(texts),
            f"steel load_encoder ({qwen.engine}, num_threads=1)": lambda: one_thread.encode_batch(texts),
        }
        print()
        print(
            f"encode speed on all of pretrain_zh: {len(texts):,} docs, {mb:.1f} MB UTF-8, median of {args.repeats}"
        )
        # NOTE: rounds interleave the engines so that load drifting over time (a shared machine) hits
        # all of them alike; each engine's figure is the median over rounds.
        times: dict[str, list[float]] = {name: [] for name in runs}
        ref_ids = None
        for _ in range(args.repeats):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                ids = fn()
                times[name].append(time.perf_counter() - t0)
                if ref_ids is None:
                    ref_ids = ids
                elif ids != ref_ids:
                    print(f"ERROR: {name} gives different ids than the baseline", file=sys.stderr)
                    return 1
        n_tok = sum(map(len, ref_ids))
        base = statistics.median(next(iter(times.values())))
        for name, ts in times.items():
            sec = statistics.median(ts)
            print(f"  {name:<44} {mb / sec:6.2f} MB/s  {base / sec:5.2f}x  ({n_tok:,} tokens, identical ids)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes on the machine skew the MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
