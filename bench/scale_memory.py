"""Does the data pipeline stay streaming? Peak memory and throughput against the input's size.

Inputs are built under --work (default /tmp/h-data) from one seed corpus of shared/data (default: the first
--base-docs documents of `pretrain_zh/zh_c3_docs.jsonl.zst`), re-emitted x1, x4, x16 as one JSONL file per copy:

- `distinct`: copy c > 0 has every CJK character rotated by c * 7919 in U+4E00..U+9FFF and every ASCII letter
  by c places (a bijection per copy: same lengths, line structure and character classes, so the same filters
  pass; no shared 5-gram, so neither exact nor near dedup drops a copy). Kept documents grow with the input.
- `dups`: every copy is the seed itself. Kept documents stay those of x1; everything else is `dedup_exact`.

1. `steel data prepare` (NFC + control/whitespace + t2s, the shared sample's zh filters, exact + near dedup,
   workers 2, chunk_tokens 16384), one fresh process per run: peak RSS of the main process (VmHWM, sampled
   every 20 ms), peak RSS summed over its workers, wall time, records/s. The main process's growth per kept
   document (x16 - x1) is the dedup index plus `documents.npy`'s columns; the workers' should be flat.
2. `steel data merge` of the `distinct` input prepared as 2 shards (chunk_tokens 1024: thousands of chunks),
   with the seed re-emitted once more so that shards share exact duplicates for merge to remove.
3. `PretrainLoader(...)` (the trainer's loader) on synthetic data dirs of 1k / 4k / 16k chunks: construction
   time and the RSS it adds (fresh process each).

0. (first) what grows with the kept documents, by tracemalloc: the dedup index (exact only; exact + near),
   `documents.npy`'s columns, merge's cross-shard exact dedup; and what that is at 1e9 documents.
4. `build_sft_rows` (what `steel sft` runs on every rank) on a ChatML JSONL of x1, x4, x16 copies of 5,000
   Alpaca-zh conversations (rotated as above): the peak RSS it adds, conversations/s.
5. `run_mc` (`steel eval mc`, CMMLU test, 5-shot) with a stub model, 10 / 40 / all questions per subject: the
   data side's peak RSS and questions/s.
6. a `.json` array source (loaded whole): the RSS added while `SourceReader` reads it, Alpaca-zh's records x1, x8.

Prints a table per part, and the ratio of the largest input to the smallest. ~12 minutes on the shared 2-core
machine; `--parts` picks some, `--src` measures another checkout's src (a worktree of an older commit),
`--smoke` runs every part on tiny inputs (~1 min: a check that the script still works, not a measurement).

    nice -n 10 .venv/bin/python bench/scale_memory.py [--base-docs 4000] [--scales 1,4,16] [--work /tmp/h-data]
        [--parts index,prepare,merge,loader,sft,eval,json] [--src DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"  # --src: another checkout's (a worktree of an older commit)

CJK0, NCJK = 0x4E00, 0x9FFF - 0x4E00 + 1


def perturb(text: str, c: int) -> str:
    """Copy `c` of `text`: CJK characters and ASCII letters rotated (c = 0: the text itself)."""
    if c == 0:
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if CJK0 <= o < CJK0 + NCJK:
            o = CJK0 + (o - CJK0 + c * 7919) % NCJK
        elif 97 <= o <= 122:
            o = 97 + (o - 97 + c) % 26
        elif 65 <= o <= 90:
            o = 65 + (o - 65 + c) % 26
        out.append(chr(o))
    return "".join(out)


def seed_docs(shared: Path, name: str, n: int) -> list[str]:
    import zstandard

    texts = []
    with (shared / name).open("rb") as f:
        for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8"):
            texts.append(json.loads(line)["text"])
            if len(texts) == n:
                break
    return texts


def write_input(d: Path, docs: list[str], copies: list[int]) -> int:
    """One JSONL file per copy (`copies`: the rotation of each); returns the bytes written."""
    d.mkdir(parents=True, exist_ok=True)
    total = 0
    for k, c in enumerate(copies):
        with (d / f"part-{k:04d}.jsonl").open("w", encoding="utf-8") as f:
            for t in docs:
                total += f.write(json.dumps({"text": perturb(t, c)}, ensure_ascii=False) + "\n")
    return total


def config(root: Path, tok: Path, out: Path, chunk_tokens: int) -> Path:
    """The shared sample's normalization, zh filters and dedup, one source over every part file."""
    import yaml

    sample = yaml.safe_load((REPO / "configs/data/shared-sample.yaml").read_text(encoding="utf-8"))
    filters = []
    for f in sample["filters"]:
        if "sources" in f:
            if "zh_c3" not in f["sources"]:
                continue
            f = {k: v for k, v in f.items() if k != "sources"}
        filters.append(f)
    cfg = {"root": str(root), "tokenizer": str(tok), "workers": 2, "chunk_tokens": chunk_tokens,
           "normalize": sample["normalize"], "filters": filters, "dedup": sample["dedup"],
           "sources": [{"name": "zh", "path": ["part-*.jsonl"]}]}
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith(key + ":"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def run_measured(cmd: list[str]) -> dict:
    """Run `cmd`; its main process's peak RSS (VmHWM), its children's peak summed RSS, wall seconds."""
    end_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"scale-stream-end-{os.getpid()}"
    end_file.unlink(missing_ok=True)
    env = dict(os.environ, STEEL_NO_PROGRESS="1", PYTHONPATH=str(SRC), SCALE_STREAM_END=str(end_file))
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    main_hwm = workers = 0
    while proc.poll() is None:
        main_hwm = max(main_hwm, _status_kib(proc.pid, "VmHWM"))
        workers = max(workers, sum(_status_kib(c, "VmRSS") for c in _children(proc.pid)))
        time.sleep(0.02)
    wall = time.perf_counter() - t
    err = proc.stderr.read()
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    end = int(end_file.read_text()) / 1024 if end_file.exists() else float("nan")
    end_file.unlink(missing_ok=True)
    return {"main_mib": main_hwm / 1024, "workers_mib": workers / 1024, "wall": wall, "end_mib": end}


STEEL_CHILD = """
import os, sys, torch
import steel.data.prepare as P

def rss_kib():
    with open("/proc/self/status") as f:
        return int(next(ln for ln in f if ln.startswith("VmRSS:")).split()[1])

def hooked(*a, _orig=P.kept_nothing, **k):  # called once the stream is done, the dedup index still held
    with open(os.environ["SCALE_STREAM_END"], "w") as f:
        f.write(str(rss_kib()))
    return _orig(*a, **k)

P.kept_nothing = hooked
from steel.cli import main
sys.exit(main(sys.argv[1:]))
"""


def steel(*args: str) -> list[str]:
    # NOTE: torch imported first: the run log's environment report imports it at the end of a run (~400 MiB),
    # which set the main process's peak and hid the growth of the dedup index below it. The child also records
    # the main process's RSS when the stream ends (`SCALE_STREAM_END`): the peak is set by the tokenizer's
    # loading (a transient whose freed pages the index then reuses), which hides the index's first ~60 MiB.
    return [sys.executable, "-c", STEEL_CHILD, *args]


def part_index(args, work: Path) -> None:
    """Bytes per document of what grows with the kept documents, traced (tracemalloc: Python objects and numpy
    arrays), and what that is at 1e9 documents (~1T tokens at ~1,000 tokens per document)."""
    import tracemalloc

    import numpy as np

    sys.path.insert(0, str(SRC))
    from steel.data.chunks import DOCUMENTS, DOCUMENTS_DTYPE
    from steel.data.config import DedupConfig
    from steel.data.dedup import Deduper
    from steel.data.merge import _cross_shard_duplicates

    print("\n0. what grows with the kept documents (tracemalloc, distinct documents)")
    print(f"{'structure':66} {'docs':>10} {'B/doc':>7} {'GiB at 1e9 docs':>16}")

    def show(what: str, n: int, size: int) -> None:
        print(f"{what:66} {n:>10,} {size / n:>7,.0f} {size / n * 1e9 / 2**30:>16,.0f}", flush=True)

    rng = np.random.default_rng(0)
    n = args.index_docs
    hashes = rng.integers(0, 2**63, size=n)  # made ints inside the trace: the index holds the int objects
    for near in (False, True):
        cfg = DedupConfig(exact=True, near=near)
        sigs = rng.integers(0, 2**32, size=(n, cfg.num_perm), dtype=np.uint32) if near else [None] * n
        tracemalloc.start()
        d = Deduper(cfg)
        for h, sig in zip(hashes, sigs):
            d.check(int(h), sig)
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del d
        show(f"prepare: dedup index, exact{' + near (128 perms, 9 bands)' if near else ' only'}", n, size)
    show("prepare: documents.npy columns (dedup.exact on)", n, n * DOCUMENTS_DTYPE.itemsize)
    # merge's cross-shard exact dedup over two shards of n documents each, 1% of all documents copies of the other
    # shard's (then 25%: each removed copy adds its token range to cut)
    for share in (0.01, 0.25):
        copies = int(2 * n * share)
        dirs = []
        for k in range(2):
            dd = work / f"index-merge-{k}"
            dd.mkdir(parents=True, exist_ok=True)
            docs = np.zeros(n, DOCUMENTS_DTYPE)
            docs["hash"] = rng.integers(0, 2**63, size=n)
            if k:
                docs["hash"][:copies] = dirs[0][1]["hash"][:copies]
            docs["order"] = np.arange(n) + (k << 32)
            docs["tokens"] = 1
            np.save(dd / DOCUMENTS, docs)
            dirs.append((dd, docs, {"sources": {"s": {}}, "dedup": {"exact": True},
                                    "chunks": [{"file": "s-00000.bin", "tokens": n, "source": "s"}]}))
        manifests = [(dd, m) for dd, _, m in dirs]
        del docs, dirs
        tracemalloc.start()
        removals, found = _cross_shard_duplicates(manifests, None, near=False)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert found["exact"] == copies, found
        del removals
        show(f"merge: cross-shard exact dedup, peak ({share:.0%} of the documents copies)", 2 * n, peak)
        for dd, _ in manifests:
            shutil.rmtree(dd, ignore_errors=True)


def part_prepare(args, docs: list[str], tok: Path, work: Path) -> None:
    print(f"\n1. steel data prepare (full pipeline, exact + near dedup, 2 workers); seed {len(docs):,} docs")
    print(f"{'variant':9} {'scale':>5} {'read':>9} {'kept':>9} {'MB in':>7} {'wall s':>7} {'rec/s':>7} "
          f"{'main peak':>9} {'main end':>9} {'workers':>8} {'chunks':>7}   (MiB: RSS)")
    rows: dict[tuple[str, int], dict] = {}
    for variant in ("distinct", "dups"):
        for s in args.scales:
            if variant == "dups" and s == 1:
                rows["dups", 1] = rows["distinct", 1]  # the same input
                continue
            root = work / f"in-{variant}-x{s}"
            shutil.rmtree(root, ignore_errors=True)
            nbytes = write_input(root, docs, list(range(s)) if variant == "distinct" else [0] * s)
            out = work / f"out-{variant}-x{s}"
            shutil.rmtree(out, ignore_errors=True)
            cfg = config(root, tok, out, 16384)
            r = run_measured(steel("data", "prepare", str(cfg), "--out", str(out)))
            m = json.loads((out / "manifest.json").read_text())
            st = m["sources"]["zh"]
            r |= {"read": st["read"], "kept": st["kept"], "mb": nbytes / 1e6, "chunks": len(m["chunks"])}
            rows[variant, s] = r
            print(f"{variant:9} {'x' + str(s):>5} {r['read']:>9,} {r['kept']:>9,} {r['mb']:>7.1f} {r['wall']:>7.1f} "
                  f"{r['read'] / r['wall']:>7,.0f} {r['main_mib']:>9.0f} {r['end_mib']:>9.0f} {r['workers_mib']:>8.0f} "
                  f"{r['chunks']:>7}",
                  flush=True)
    lo, hi = min(args.scales), max(args.scales)
    for variant in ("distinct", "dups"):
        a, b = rows[variant, lo], rows[variant, hi]
        mid = rows[variant, sorted(args.scales)[-2]] if len(args.scales) > 2 else a
        grown = (b["end_mib"] - mid["end_mib"]) * 2**20  # the two largest: both above the tokenizer's transient
        per = grown / max(b["kept"] - mid["kept"], 1)
        between = (f"{(b['read'] - mid['read']) / (b['wall'] - mid['wall']):,.0f}" if b["wall"] > mid["wall"] and
                   b["read"] > mid["read"] else "n/a")  # a small input: the startup's noise outweighs the records
        print(f"{variant}: x{hi}/x{lo}: read {b['read'] / a['read']:.1f}x, main peak RSS {b['main_mib'] / a['main_mib']:.2f}x, "
              f"at stream end {b['end_mib'] / a['end_mib']:.2f}x (+{(b['end_mib'] - a['end_mib']):.0f} MiB), "
              f"workers {b['workers_mib'] / max(a['workers_mib'], 1):.2f}x, "
              f"records/s {b['read'] / b['wall'] / (a['read'] / a['wall']):.2f}x (startup included; "
              f"{between} records/s between the two largest)"
              + (f"; main growth per kept document (stream end, the two largest scales) {per:,.0f} B -> {per * 1e9 / 2**40:.2f} TiB at 1e9 kept documents"
                 if variant == "distinct" else ""))


def part_merge(args, docs: list[str], tok: Path, work: Path) -> None:
    print("\n2. steel data merge of 2 shards (chunk_tokens 1024), the seed's documents in both shards")
    print(f"{'scale':>5} {'chunks':>7} {'kept':>9} {'wall s':>7} {'main MiB':>9} {'removed':>8}")
    rows = {}
    for s in args.scales:
        root = work / f"in-merge-x{s}"
        shutil.rmtree(root, ignore_errors=True)
        write_input(root, docs, list(range(s)))
        # the seed again, with one more document: the largest file, so the first to shard 0, where copy 0
        # (part-0000, first of the equal sizes) goes to shard 1: every seed document is a cross-shard duplicate
        with (root / "part-dup.jsonl").open("w", encoding="utf-8") as f:
            for t in docs + [perturb(docs[0], s + 1)]:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        shards = []
        for i in range(2):
            out = work / f"out-merge-x{s}-shard{i}"
            shutil.rmtree(out, ignore_errors=True)
            cfg = config(root, tok, out, 1024)
            run_measured(steel("data", "prepare", str(cfg), "--out", str(out), "--shard", f"{i}/2"))
            shards.append(str(out))
        out = work / f"out-merge-x{s}"
        shutil.rmtree(out, ignore_errors=True)
        r = run_measured(steel("data", "merge", str(out), *shards))
        m = json.loads((out / "manifest.json").read_text())
        r |= {"chunks": len(m["chunks"]), "kept": m["sources"]["zh"]["kept"],
              "removed": m["dedup"].get("cross_shard_exact_removed")}
        rows[s] = r
        print(f"{'x' + str(s):>5} {r['chunks']:>7,} {r['kept']:>9,} {r['wall']:>7.1f} {r['main_mib']:>9.0f} "
              f"{r['removed']!s:>8}", flush=True)
    a, b = rows[min(args.scales)], rows[max(args.scales)]
    print(f"x{max(args.scales)}/x{min(args.scales)}: chunks {b['chunks'] / a['chunks']:.1f}x, wall {b['wall'] / a['wall']:.2f}x, "
          f"main peak RSS {b['main_mib'] / a['main_mib']:.2f}x")


# What every measuring child defines first (Linux /proc): a status field in KiB, and the peak reset.
CHILD_RSS = """
import sys, time

def _status(key):
    with open("/proc/self/status") as f:
        return int(next(ln for ln in f if ln.startswith(key + ":")).split()[1])

def reset_peak():  # VmHWM := VmRSS (what loaded before, e.g. a tokenizer, peaked above what follows), -> VmRSS in KiB
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")
"""


LOADER_CHILD = """
import sys, time

t = time.perf_counter()
import steel.data.loader as L
base = reset_peak()
t0 = time.perf_counter()
ld = L.PretrainLoader([sys.argv[1]], 256, 8, seed=0)
t1 = time.perf_counter()
for _ in range(20):
    ld.next_batch()
t2 = time.perf_counter()
peak = _status("VmHWM")
print(t1 - t0, t2 - t1, base, peak)
"""


def part_loader(args, work: Path) -> None:
    import numpy as np

    sys.path.insert(0, str(REPO / "src"))
    from steel.data.chunks import head_tail_md5, write_chunk, write_manifest

    print("\n3. PretrainLoader construction on a data dir of N chunks (1024 tokens each, seq_len 256)")
    print(f"{'chunks':>7} {'open s':>7} {'20 batches s':>13} {'RSS added MiB':>14} {'per chunk KiB':>14}")
    rng = np.random.default_rng(0)
    rows = {}
    for n in args.chunks:
        d = work / f"loader-{n}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        chunks = []
        for i in range(n):
            name = f"web-{i:06d}.bin"
            write_chunk(d / name, rng.integers(0, 1000, 1024, dtype=np.uint32), 151_936, "bench")
            chunks.append({"file": name, "tokens": 1024, "md5": head_tail_md5(d / name), "source": "web"})
        write_manifest(d, {"total_tokens": n * 1024, "chunks": chunks,
                           "tokenizer": {"fingerprint": "bench", "vocab_size": 151_936, "eos_id": 0},
                           "sources": {"web": {"weight": 1.0}}, "config": {}})
        env = dict(os.environ, PYTHONPATH=str(SRC))
        out = subprocess.run([sys.executable, "-c", CHILD_RSS + LOADER_CHILD, str(d)], env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        t_open, t_batches, base, peak = (float(x) for x in out.stdout.split())
        rows[n] = (t_open, (peak - base) / 1024)
        print(f"{n:>7,} {t_open:>7.2f} {t_batches:>13.2f} {(peak - base) / 1024:>14.1f} {(peak - base) / n:>14.2f}",
              flush=True)
        shutil.rmtree(d, ignore_errors=True)
    a, b = rows[min(args.chunks)], rows[max(args.chunks)]
    print(f"{max(args.chunks)}/{min(args.chunks)} chunks: open time {b[0] / a[0]:.1f}x, RSS added {b[1] / max(a[1], 0.1):.1f}x")


SFT_CHILD = """
import sys, time

from transformers import AutoTokenizer
from steel.config import from_dict
from steel.sft import data as D
tok = AutoTokenizer.from_pretrained(sys.argv[2])
cfg = from_dict(D.SftDataConfig, {"root": sys.argv[1], "seq_len": 2048, "packing": True,
                                  "datasets": [{"name": "c", "path": ["chat.jsonl"], "chat_layout": "openai"}]})
base = reset_peak()
t = time.perf_counter()
stats = {}
ids, labels = D.build_sft_rows(cfg, tok, stats)
t = time.perf_counter() - t
peak = _status("VmHWM")
print(t, base, peak, ids.shape[0], stats["datasets"]["c"]["kept"])
"""


def part_sft(args, shared: Path, tok: Path, work: Path) -> None:
    """`build_sft_rows` (what `steel sft` runs on every rank before training) on a ChatML JSONL of growing size."""
    recs = []
    for name in ("zh-data-part-00.json", "zh-data-part-01.json"):
        recs += json.loads((shared / "sft_zh/alpaca_chinese_carbonz0" / name).read_text(encoding="utf-8"))
    recs = [r for r in recs if r.get("instruction") and r.get("output")][: args.sft_base]
    print(f"\n4. SFT rows (build_sft_rows: read, tokenize, pack; seq_len 2048) from a ChatML JSONL; seed {len(recs):,} "
          "conversations of sft_zh/alpaca_chinese_carbonz0")
    print(f"{'scale':>5} {'convs':>8} {'MB in':>7} {'rows':>7} {'wall s':>7} {'conv/s':>7} {'data MiB':>9} {'B/token':>8}")
    rows = {}
    for s in args.sft_scales:
        d = work / f"sft-x{s}"
        d.mkdir(parents=True, exist_ok=True)
        nbytes = 0
        with (d / "chat.jsonl").open("w", encoding="utf-8") as f:
            for c in range(s):
                for r in recs:
                    user = r["instruction"] + ("\n" + r["input"] if r.get("input") else "")
                    msgs = [{"role": "user", "content": perturb(user, c)},
                            {"role": "assistant", "content": perturb(r["output"], c)}]
                    nbytes += f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")
        env = dict(os.environ, PYTHONPATH=str(SRC), STEEL_NO_PROGRESS="1")
        out = subprocess.run([sys.executable, "-c", CHILD_RSS + SFT_CHILD, str(d), str(tok)], env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        t, base, peak, n_rows, kept = (float(x) for x in out.stdout.split())
        grown = (peak - base) * 1024
        per_tok = grown / (n_rows * 2048)
        rows[s] = (t, grown, kept)
        print(f"{'x' + str(s):>5} {int(kept):>8,} {nbytes / 1e6:>7.1f} {int(n_rows):>7,} {t:>7.1f} {kept / t:>7,.0f} "
              f"{grown / 2**20:>9.0f} {per_tok:>8.1f}", flush=True)
    a, b = rows[min(args.sft_scales)], rows[max(args.sft_scales)]
    print(f"x{max(args.sft_scales)}/x{min(args.sft_scales)}: conversations {b[2] / a[2]:.1f}x, data memory "
          f"{b[1] / max(a[1], 1):.1f}x, conv/s {(b[2] / b[0]) / (a[2] / a[0]):.2f}x (B/token: peak RSS added per row "
          "position, rows being 2048 x 16 B of int64 ids + labels)")


EVAL_CHILD = """
import sys, time

from pathlib import Path
from types import SimpleNamespace
import torch
from transformers import AutoTokenizer
from steel.eval.mc import McOptions, run_mc

class Stub(torch.nn.Module):  # no model: zero logits, only at the positions asked for (logits_to_keep)
    def __init__(self, vocab):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.vocab = vocab
        self.config = SimpleNamespace(max_position_embeddings=4096)

    def forward(self, input_ids, attention_mask=None, use_cache=False, position_ids=None, logits_to_keep=1):
        return SimpleNamespace(logits=torch.zeros(input_ids.shape[0], logits_to_keep, self.vocab))

tok = AutoTokenizer.from_pretrained(sys.argv[2])
opts = McOptions(task="cmmlu", data=Path(sys.argv[1]), limit=int(sys.argv[3]) or None, batch_size=8)
base = reset_peak()
t = time.perf_counter()
res = run_mc(Stub(len(tok)), tok, opts)
t = time.perf_counter() - t
peak = _status("VmHWM")
print(t, base, peak, len(opts.details))
"""


def part_eval(args, shared: Path, tok: Path) -> None:
    """`run_mc` (what `steel eval mc` runs) over CMMLU test with a stub model: the data side alone."""
    print("\n5. steel eval mc: CMMLU test, 5-shot logprob/letter, stub model (zero logits): the data side only")
    print(f"{'limit':>6} {'questions':>9} {'wall s':>7} {'q/s':>6} {'data MiB':>9}")
    rows = {}
    for limit in args.eval_limits:
        env = dict(os.environ, PYTHONPATH=str(SRC), STEEL_NO_PROGRESS="1")
        out = subprocess.run([sys.executable, "-c", CHILD_RSS + EVAL_CHILD, str(shared / "cmmlu"), str(tok), str(limit)], env=env,
                             capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        t, base, peak, n = (float(x) for x in out.stdout.split())
        rows[limit] = (n, (peak - base) / 1024, t)
        print(f"{limit or 'all':>6} {int(n):>9,} {t:>7.1f} {n / t:>6,.0f} {(peak - base) / 1024:>9.0f}", flush=True)
    a, b = rows[args.eval_limits[0]], rows[args.eval_limits[-1]]
    print(f"{int(b[0]):,}/{int(a[0]):,} questions: data memory {b[1] / max(a[1], 1):.1f}x "
          f"({b[1] * 2**20 / b[0] / 1024:.1f} KiB per question)")


JSON_CHILD = """
from pathlib import Path

from steel.data.config import DataConfig, SourceConfig
from steel.data.sources import SourceReader
p = Path(sys.argv[1])
src = SourceConfig(name="s", path=[p.name], kind="chat")
reader = SourceReader(src, DataConfig(sources=[src], root=str(p.parent)))
base = reset_peak()
n = sum(1 for _ in reader.read_file(p))
print(n, base, _status("VmHWM"))
"""


def part_json(args, shared: Path, work: Path) -> None:
    """A `.json` array source (loaded whole, as the README says): the RSS it adds while read, against its size."""
    recs = []
    for name in ("zh-data-part-00.json", "zh-data-part-01.json"):
        recs += json.loads((shared / "sft_zh/alpaca_chinese_carbonz0" / name).read_text(encoding="utf-8"))
    print(f"\n6. a JSON array source read whole (SourceReader.read_file, a chat source): {len(recs):,} Alpaca-zh records "
          "of sft_zh/alpaca_chinese_carbonz0 repeated")
    print(f"{'scale':>5} {'records':>9} {'MiB file':>9} {'RSS added MiB':>14} {'x file':>7}")
    for s in args.json_scales:
        p = work / f"array-x{s}.json"
        p.write_text(json.dumps(recs * s, ensure_ascii=False), encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(SRC))
        out = subprocess.run([sys.executable, "-c", CHILD_RSS + JSON_CHILD, str(p)], env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        n, base, peak = (int(x) for x in out.stdout.split())
        size, added = p.stat().st_size / 2**20, (peak - base) / 1024
        print(f"{'x' + str(s):>5} {n:>9,} {size:>9.1f} {added:>14.0f} {added / size:>7.1f}", flush=True)
        p.unlink()


def main() -> None:
    global SRC
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--seed-file", default="pretrain_zh/zh_c3_docs.jsonl.zst")
    ap.add_argument("--base-docs", type=int, default=4000)
    ap.add_argument("--scales", default="1,4,16", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--chunks", default="1000,4000,16000", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--work", default="/tmp/h-data")
    ap.add_argument("--sft-base", type=int, default=5000)
    ap.add_argument("--sft-scales", default="1,4,16", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--eval-limits", default="10,40,0", type=lambda s: [int(x) for x in s.split(",")],
                    help="questions per subject (0: all)")
    ap.add_argument("--src", default=str(SRC), help="the src directory to measure (a worktree's: the old code)")
    ap.add_argument("--index-docs", type=int, default=200_000)
    ap.add_argument("--json-scales", default="1,8", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--parts", default="index,prepare,merge,loader,sft,eval,json")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny inputs (300 documents x1/x2, 100/200 chunks, ...): every part runs in ~1 min; the "
                         "figures mean nothing")
    args = ap.parse_args()
    if args.smoke:
        args.base_docs, args.scales, args.chunks, args.index_docs = 300, [1, 2], [100, 200], 5000
        args.sft_base, args.sft_scales, args.eval_limits, args.json_scales = 300, [1, 2], [2, 3], [1]
    SRC = Path(args.src).resolve()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    print(f"measuring {SRC}")
    if "index" in parts:
        part_index(args, work)
    if {"prepare", "merge", "sft", "eval"} & set(parts):
        sys.path.insert(0, str(REPO / "src"))
        from steel.tokenizer.qwen import build_qwen_tokenizer

        tok = work / "tokenizer"
        if not (tok / "tokenizer.json").exists():
            build_qwen_tokenizer(tok)
        if "prepare" in parts or "merge" in parts:
            docs = seed_docs(Path(args.shared), args.seed_file, args.base_docs)
        if "prepare" in parts:
            part_prepare(args, docs, tok, work)
        if "merge" in parts:
            part_merge(args, docs, tok, work)
        if "sft" in parts:
            part_sft(args, Path(args.shared), tok, work)
        if "eval" in parts:
            part_eval(args, Path(args.shared), tok)
    if "loader" in parts:
        part_loader(args, work)
    if "json" in parts:
        part_json(args, Path(args.shared), work)


if __name__ == "__main__":
    main()
