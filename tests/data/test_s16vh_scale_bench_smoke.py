"""bench/scale_memory.py keeps working: its --smoke run (tiny inputs) prints every table, and the prepare summary
says n/a where the two largest inputs give no records/s to compare (review VH).

The README's "Scale" figures come from this script: merge's cross-shard exact dedup is measured with 1% and 25% of
the documents copies (each removed copy costs its token range to cut, ~130 B), the index parts by tracemalloc.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import steel
from steel.data.chunks import DOCUMENTS_DTYPE

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale_memory.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("scale_memory_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_smoke_run_prints_the_index_and_loader_tables(tmp_path):
    src = str(Path(steel.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, str(BENCH), "--smoke", "--parts", "index,loader", "--work", str(tmp_path),
                          "--src", src], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {m[1].strip(): (int(m[2].replace(",", "")), int(m[3].replace(",", "")))
            for m in re.finditer(r"^((?:prepare|merge): .+?)\s+([\d,]+)\s+([\d,]+)\s+[\d,]+$", out.stdout, re.M)}
    exact = rows["prepare: dedup index, exact only"]
    near = rows["prepare: dedup index, exact + near (128 perms, 9 bands)"]
    assert exact[0] == near[0] == 5000
    assert near[1] > 4 * 128 + exact[1]  # the signature alone is 512 B
    assert rows["prepare: documents.npy columns (dedup.exact on)"] == (5000, DOCUMENTS_DTYPE.itemsize)
    few = rows["merge: cross-shard exact dedup, peak (1% of the documents copies)"]
    many = rows["merge: cross-shard exact dedup, peak (25% of the documents copies)"]
    assert few[0] == many[0] == 10000 and DOCUMENTS_DTYPE.itemsize < few[1] < many[1]
    loader = re.findall(r"^\s+([\d,]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out.stdout, re.M)
    assert loader == ["100", "200"]


def test_prepare_summary_says_n_a_without_a_records_per_second_to_compare(tmp_path, monkeypatch, capsys):
    bench = _bench_module()
    walls = iter([2.0, 2.0, 2.0])  # distinct x1, distinct x2, dups x2: the startup's noise, no time for records

    def run_measured(cmd):
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        read = 300 * (2 if out.name.endswith("x2") else 1)
        kept = 300 if "dups" in out.name else read
        (out / "manifest.json").write_text(json.dumps({"sources": {"zh": {"read": read, "kept": kept}},
                                                       "chunks": [{}]}))
        return {"main_mib": 380.0, "workers_mib": 480.0, "wall": next(walls), "end_mib": 312.0}

    monkeypatch.setattr(bench, "run_measured", run_measured)
    monkeypatch.setattr(bench, "write_input", lambda d, docs, copies: 1000)
    monkeypatch.setattr(bench, "config", lambda root, tok, out, chunk_tokens: out.with_suffix(".yaml"))
    args = type("A", (), {"scales": [1, 2]})()
    bench.part_prepare(args, ["x"] * 300, tmp_path / "tok", tmp_path)
    text = capsys.readouterr().out
    summary = [ln for ln in text.splitlines() if ln.startswith(("distinct:", "dups:"))]
    assert len(summary) == 2
    for ln in summary:
        assert "n/a records/s between the two largest" in ln, ln
