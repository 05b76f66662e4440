"""Tokens/s of `steel train`'s Trainer vs a minimal hand-written loop (same model, data, batch) on CPU.

Both start from a fresh `steel.train.trainer.main()` build of the same config (a 2-layer, d=128 llama,
micro-batch 8 x seq 128, accumulation 2); the baseline loop does only next_batch / forward / CE /
backward / clip / AdamW step. The Trainer's time includes its logging, NaN guard and the final
checkpoint save. Alternating runs, median of 3 each. NOTE: timed in process CPU time (one thread),
not wall time: on a shared machine wall time mostly measures the neighbours' load.

    .venv/bin/python bench/trainer_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from steel.data.chunks import head_tail_md5, write_chunk, write_manifest
from steel.train.trainer import main, setup

STEPS, MICRO, ACCUM, SEQ = 30, 8, 2, 128


def make(tmp: Path) -> Path:
    d = tmp / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    toks = rng.integers(1, 256, 400_000)
    toks[-1] = 0
    write_chunk(d / "c.bin", toks, 256, "bench")
    write_manifest(d, {"total_tokens": len(toks), "chunks": [{"file": "c.bin", "tokens": len(toks),
                       "md5": head_tail_md5(d / "c.bin"), "source": "web"}],
                       "tokenizer": {"fingerprint": "bench", "vocab_size": 256, "eos_id": 0},
                       "sources": {"web": {"weight": 1.0}}, "config": {}})
    cfg = {"max_steps": STEPS, "micro_batch": MICRO, "grad_accum": ACCUM,
           "model": {"config": {"model_type": "llama", "vocab_size": 256, "hidden_size": 128, "intermediate_size": 344,
                                "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": SEQ}},
           "data": {"dirs": [str(d)], "seq_len": SEQ}, "checkpoint": {"every": 10_000},
           "log": {"every": 10, "tensorboard": True, "progress": False}}
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_trainer(cfg: Path, run_dir: Path) -> float:
    trainer = main(setup(str(cfg), [f"run_dir={run_dir}"]))
    t0 = time.process_time()
    trainer.train()
    dt = time.process_time() - t0
    trainer.metrics.close()
    return STEPS * ACCUM * MICRO * SEQ / dt


def run_baseline(cfg: Path, run_dir: Path) -> float:
    t = main(setup(str(cfg), [f"run_dir={run_dir}"]))
    model, opt, data = t.model, t.optimizer, t.data
    t0 = time.process_time()
    for _ in range(STEPS):
        for _ in range(ACCUM):
            b = data.next_batch()
            logits = model(input_ids=b["input_ids"]).logits
            loss = F.cross_entropy(logits.flatten(0, 1), b["shift_labels"].flatten()) / ACCUM
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    dt = time.process_time() - t0
    t.metrics.close()
    return STEPS * ACCUM * MICRO * SEQ / dt


def main_() -> None:
    # No options; parsing still answers --help and refuses a flag instead of ignoring it.
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(1)  # NOTE: one thread: steadier on a shared machine, same for both loops
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = make(tmp)
        tr, ba = [], []
        for i in range(3):
            ba.append(run_baseline(cfg, tmp / f"base{i}"))
            tr.append(run_trainer(cfg, tmp / f"train{i}"))
        t, b = statistics.median(tr), statistics.median(ba)
        print(f"threads: {torch.get_num_threads()}")
        print(f"hand-written loop: {b:,.0f} tokens/s  (runs: {', '.join(f'{x:,.0f}' for x in ba)})")
        print(f"steel Trainer:     {t:,.0f} tokens/s  (runs: {', '.join(f'{x:,.0f}' for x in tr)})")
        print(f"ratio: {t / b:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main_()
