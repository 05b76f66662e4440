"""Kill a tiny CPU training run with SIGKILL at random moments (some during checkpoint saves) and check
that the resumed run ends bit-identical to an uninterrupted one: final weights and every step's loss.

    .venv/bin/python bench/kill_resume.py [--kills 12] [--seed 0] [--param-dtype fp32|bf16]

Prints `kills survived: K/K, identical: yes|no`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from steel.data.chunks import head_tail_md5, write_chunk, write_manifest
from steel.train.checkpoint import latest_checkpoint, load_model_state

STEPS = 150


def make_data(d: Path) -> Path:
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    chunks = []
    for i, n in enumerate([20_000, 15_000, 25_000]):
        toks = rng.integers(1, 256, n)
        toks[rng.choice(n, n // 60, replace=False)] = 0
        toks[-1] = 0
        write_chunk(d / f"c{i}.bin", toks, 256, "bench")
        chunks.append({"file": f"c{i}.bin", "tokens": n, "md5": head_tail_md5(d / f"c{i}.bin"), "source": "web"})
    write_manifest(d, {"total_tokens": 60_000, "chunks": chunks,
                       "tokenizer": {"fingerprint": "bench", "vocab_size": 256, "eos_id": 0},
                       "sources": {"web": {"weight": 1.0}}, "config": {}})
    return d


def make_config(tmp: Path, data: Path, run: str, param_dtype: str = "fp32") -> Path:
    cfg = {
        "parallel": {"param_dtype": param_dtype},
        "run_dir": str(tmp / run), "max_steps": STEPS, "micro_batch": 4, "grad_accum": 2,
        "model": {"config": {"model_type": "llama", "vocab_size": 256, "hidden_size": 32, "intermediate_size": 64,
                             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                             "max_position_embeddings": 64}},
        "data": {"dirs": [str(data)], "seq_len": 32},
        "optim": {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 10},
        "checkpoint": {"every": 5, "keep": 3},
        "log": {"every": 1, "tensorboard": True, "progress": False},
    }
    path = tmp / f"{run}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(cfg: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    return subprocess.Popen([sys.executable, "-m", "steel.cli", "train", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def current_step(run: Path) -> int:
    """The last step in metrics.jsonl (0 before any)."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return json.loads(line)["step"]
        except (json.JSONDecodeError, KeyError):
            continue
    return 0


def losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--param-dtype", default="fp32", choices=["fp32", "bf16"],
                    help="parallel.param_dtype of the runs (bf16: fp32 masters in the optimizer state)")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_data(tmp / "data")
        t0 = time.perf_counter()
        ref = start(make_config(tmp, data, "ref", args.param_dtype))
        if ref.wait() != 0:
            print(ref.stderr.read()[-2000:])
            return 1
        ref_time = time.perf_counter() - t0
        print(f"uninterrupted run: {ref_time:.1f}s for {STEPS} steps")

        cfg, run = make_config(tmp, data, "killed", args.param_dtype), tmp / "killed"
        kills = survived = during_save = 0
        while True:
            p = start(cfg)
            if kills < args.kills:
                # Kill once the run has gone 1-12 steps past where it resumed (a random step), or, every
                # other time, as soon as a checkpoint directory is being written.
                saving = kills % 2 == 1
                base = current_step(run)
                target = base + rnd.randint(1, 12)
                while p.poll() is None:
                    if saving and current_step(run) > base and any(run.glob("checkpoints/step-*.tmp")):
                        break
                    if not saving and current_step(run) >= target:
                        break
                    time.sleep(0.0005 if saving else 0.005)
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    kills += 1
                    mid_save = any(run.glob("checkpoints/*.tmp"))
                    during_save += mid_save
                    step = latest_checkpoint(run)
                    print(f"kill {kills}: at step {current_step(run)}{', during a save' if mid_save else ''}; "
                          f"newest checkpoint {step.name if step else None}")
                    continue
            rc = p.wait()
            if rc != 0:
                print(f"run failed after {kills} kills (rc {rc}):\n{p.stderr.read()[-3000:]}")
                break
            survived = kills
            break
        final_ref, final = load_model_state(latest_checkpoint(tmp / "ref")), None
        identical = False
        if survived == kills and latest_checkpoint(run) is not None:
            final = load_model_state(latest_checkpoint(run))
            same_w = set(final) == set(final_ref) and all(torch.equal(final[k], final_ref[k]) for k in final)
            same_l = losses(run) == losses(tmp / "ref")
            identical = same_w and same_l
            print(f"losses: {len(losses(run))} steps, identical: {same_l}; weights identical: {same_w}")
        print(f"kills during a save: {during_save}")
        print(f"kills survived: {survived}/{kills}, identical: {'yes' if identical else 'no'}")
        return 0 if identical and survived == kills else 1


if __name__ == "__main__":
    sys.exit(main())
