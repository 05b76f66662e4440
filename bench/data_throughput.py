"""Data pipeline figures (issue 2, "Figures to reach"), all measured in one run on this machine:

1. raw HF `tokenizers` `encode_batch_fast` (no offsets) and raw `tiktoken` `encode_ordinary_batch` (Qwen vocabulary)
   over all Chinese pretraining text of ../shared/data (pretrain_zh/*.jsonl.zst), in MB/s of UTF-8 text;
2. `steel data prepare` on the same files with normalizers, filters and dedup off, 2 workers
   (reading + decompression + JSON + tokenization + chunk writing + manifest), as ratios to (1);
3. the full pipeline (shared-sample normalizers, all filters, exact + MinHash dedup) on the same files;
4. peak memory (RSS of the process tree) of `steel data prepare configs/data/shared-sample.yaml`
   over all of ../shared/data;
5. the dedup index size per million documents (bytes per indexed document, measured, extrapolated).

Each timing is the median of --runs runs. Usage:
    .venv/bin/python bench/data_throughput.py [--runs 3] [--shared ../shared/data] [--skip-memory]
"""

from __future__ import annotations

import argparse
import atexit
import glob
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def median_time(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def load_texts(files: list[str]) -> list[str]:
    import zstandard

    texts = []
    for f in files:
        with open(f, "rb") as fh:
            for line in io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh)):
                texts.append(json.loads(line)["text"])
    return texts


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over `pid` and its descendants.

    NOTE: forked workers share the parent's pages (the tokenizer, imported libraries); RSS counts
    them once per process, PSS splits them, so the PSS sum is the physical memory used.
    """
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parents[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/smaps_rollup") as f:
                vals = {k: int(v.split()[0]) * 1024 for k, v in (ln.split(":", 1) for ln in f if ":" in ln[:12])
                        if k in ("Rss", "Pss")}
            rss[int(d)] = (vals.get("Rss", 0), vals.get("Pss", 0))
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for c, pp in parents.items():
            if pp == p and c not in tree:
                tree.add(c)
                frontier.append(c)
    return sum(rss.get(p, (0, 0))[0] for p in tree), sum(rss.get(p, (0, 0))[1] for p in tree)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--shared", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("STEEL_NO_PROGRESS", "1")

    import tiktoken
    from tokenizers import Tokenizer

    from steel.config import from_dict, load_config
    from steel.data.config import DataConfig
    from steel.data.dedup import Deduper
    from steel.data.prepare import prepare
    from steel.tokenizer.engine import _tiktoken_pattern, load_encoder
    from steel.tokenizer.qwen import build_qwen_tokenizer, find_qwen_ranks, read_ranks

    shared = Path(args.shared).resolve()
    zh_files = sorted(glob.glob(str(shared / "pretrain_zh" / "*.jsonl.zst")))
    tmp = Path(tempfile.mkdtemp(prefix="steel-bench-"))
    # NOTE: the scratch holds a Qwen tokenizer and the prepared data (~100 MB with the memory step); each run
    # left it behind in the temp directory.
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    tok_dir = build_qwen_tokenizer(tmp / "tokenizer")
    texts = load_texts(zh_files)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(f"machine: {os.cpu_count()} CPUs; text: {len(texts):,} docs, {mb:.1f} MB UTF-8 from {len(zh_files)} files")

    # -- 1. raw engines --------------------------------------------------------------------------------
    hf = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    hf.encode_special_tokens = True
    t_hf, hf_out = median_time(lambda: hf.encode_batch_fast(texts, add_special_tokens=False), args.runs)
    tok_json = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tt = tiktoken.Encoding(name="qwen-bench", pat_str=_tiktoken_pattern(tok_json),
                           mergeable_ranks=read_ranks(find_qwen_ranks()), special_tokens={})
    t_tt, tt_out = median_time(lambda: tt.encode_ordinary_batch(texts), args.runs)
    n_hf = sum(len(e.ids) for e in hf_out)
    n_tt = sum(map(len, tt_out))
    same = all(e.ids == t for e, t in zip(hf_out, tt_out))
    del hf_out, tt_out
    print(f"raw HF encode_batch_fast:          {mb / t_hf:6.2f} MB/s  ({t_hf:.2f} s, {n_hf:,} tokens)")
    print(f"raw tiktoken encode_ordinary_batch: {mb / t_tt:6.2f} MB/s  ({t_tt:.2f} s, {n_tt:,} tokens, ids identical: {same})")

    # -- 2. prepare, filters off -----------------------------------------------------------------------
    encoder = load_encoder(tok_dir, num_threads=1)
    log = logging.getLogger("bench")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    base = {"root": str(shared), "tokenizer": str(tok_dir), "workers": 2,
            "sources": [{"name": "zh", "path": ["pretrain_zh/*.jsonl.zst"]}]}
    off = from_dict(DataConfig, base | {"filters": [], "dedup": {"exact": False, "near": False},
                                        "normalize": {"unicode": "none", "control_chars": False, "whitespace": False}})
    t_off, m_off = median_time(lambda: prepare(off, tmp / "off", encoder=encoder, log=log, quiet=True), args.runs)
    docs_tokens = m_off["total_tokens"] - len(texts)  # minus one EOS per document
    print(f"steel data prepare, filters off, 2 workers: {mb / t_off:6.2f} MB/s ({t_off:.2f} s, "
          f"{docs_tokens:,} tokens + EOS)  = {t_hf / t_off:.2f}x HF (target >= 1.8), "
          f"{t_tt / t_off:.2f}x tiktoken (target >= 0.8)")

    # -- 3. full pipeline -------------------------------------------------------------------------------
    sample = load_config(DataConfig, REPO / "configs" / "data" / "shared-sample.yaml")
    zh_names = [s.name for s in sample.sources if s.name.startswith("zh_")]
    full = from_dict(DataConfig, base | {
        "sources": [{"name": s.name, "path": s.path} for s in sample.sources if s.name in zh_names],
        "filters": [{k: v for k, v in f.items() if k != "sources"} | ({"sources": [n for n in f["sources"] if n in zh_names]}
                    if "sources" in f else {}) for f in sample.filters if not set(f.get("sources") or zh_names).isdisjoint(zh_names)],
        "normalize": {k: getattr(sample.normalize, k) for k in ("unicode", "control_chars", "whitespace", "t2s")},
        "dedup": {k: getattr(sample.dedup, k) for k in ("exact", "near", "threshold", "num_perm", "ngram")},
    })
    t_full, m_full = median_time(lambda: prepare(full, tmp / "full", encoder=encoder, log=log, quiet=True), args.runs)
    kept = sum(s["kept"] for s in m_full["sources"].values())
    print(f"full pipeline (t2s, {len(full.filters)} filters, exact+MinHash dedup), 2 workers: {mb / t_full:6.2f} MB/s "
          f"({t_full:.2f} s, kept {kept:,}/{len(texts):,} docs)")

    # -- 4. peak memory over all of ../shared/data ----------------------------------------------------
    if not args.skip_memory:
        cmd = [sys.executable, "-m", "steel.cli", "data", "prepare", str(REPO / "configs/data/shared-sample.yaml"),
               "--set", f"root={shared}", "--set", f"tokenizer={tok_dir}", "--out", str(tmp / "all")]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = peak_pss = 0
        while proc.poll() is None:
            rss, pss = tree_memory(proc.pid)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            time.sleep(0.05)
        wall = time.perf_counter() - t
        assert proc.returncode == 0, f"prepare failed ({proc.returncode}): {' '.join(cmd)}"
        m_all = json.loads((tmp / "all" / "manifest.json").read_text())
        raw_mb = m_all["stats"]["input_bytes"] / 1e6
        print(f"peak memory of steel data prepare over all of shared/data (main + 2 workers): PSS {peak_pss / 2**20:.0f} MiB, "
              f"RSS sum {peak / 2**20:.0f} MiB "
              f"({wall:.1f} s wall, {raw_mb:.1f} MB of input files, {m_all['total_tokens']:,} tokens)")

    # -- 5. dedup index size ------------------------------------------------------------------------------
    n = 200_000
    rng = np.random.default_rng(0)
    cfg = sample.dedup
    sigs = rng.integers(0, 2**32, size=(n, cfg.num_perm), dtype=np.uint32)  # distinct docs: every band key new
    hashes = rng.integers(0, 2**63, size=n).tolist()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    d = Deduper(cfg)
    for h, s in zip(hashes, sigs):
        d.check(h, s)
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per_doc = size / n
    print(f"dedup index (exact + MinHash, {cfg.num_perm} perms, {d.bands} bands x {d.rows} rows): {per_doc:.0f} B/doc "
          f"measured over {n:,} docs -> {per_doc * 1e6 / 2**30:.2f} GiB per million documents")


if __name__ == "__main__":
    main()
