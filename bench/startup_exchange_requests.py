"""Store requests of the startup exchange (`init_distributed`'s refusal notes), per world size.

One thread per rank runs `_startup_errors` over one in-memory `HashStore` wrapped in a counter; no rank is
refused (the common start), then one is. Under torchrun every request goes to one host (the agent of node 0):
the exchange it replaced made world * world + 4 * world + 1 of them (every rank read every rank's note).

Usage: .venv/bin/python bench/startup_exchange_requests.py [--worlds 8 64 256 1000]
"""

from __future__ import annotations

import argparse
import datetime
import threading
import time
from collections import Counter

import torch.distributed as dist

from steel.config import ConfigError
from steel.train.distributed import _startup_errors


class Counting:
    def __init__(self, store, counts: Counter):
        self.store, self.counts, self.lock = store, counts, threading.Lock()

    def __getattr__(self, name):
        real = getattr(self.store, name)

        def call(*args):
            with self.lock:
                self.counts[name] += 1
            return real(*args)

        return call


def exchange(world: int, refused: int | None) -> tuple[Counter, float]:
    store = dist.HashStore()
    counts: Counter = Counter()
    counting = Counting(store, counts)
    timeout = datetime.timedelta(minutes=5)

    def rank(r):
        try:
            _startup_errors(counting, r, world, ConfigError("refused") if r == refused else None, timeout, "bench")
        except (ConfigError, OSError):
            pass

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, nargs="+", default=[8, 64, 256, 1000])
    args = ap.parse_args()
    print(f"{'world':>6} {'requests':>9} {'per rank':>8} {'one refused':>11} {'old (W^2+4W+1)':>15}  by method")
    for w in args.worlds:
        ok, _ = exchange(w, None)
        bad, _ = exchange(w, w // 2)
        total = sum(ok.values())
        print(f"{w:>6} {total:>9} {total / w:>8.2f} {sum(bad.values()):>11} {w * w + 4 * w + 1:>15}  "
              + ", ".join(f"{k} {v}" for k, v in sorted(ok.items())))


if __name__ == "__main__":
    main()
