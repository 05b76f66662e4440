"""bench/data_throughput.py and bench/tokenizer_compression.py remove their scratch directory (a Qwen tokenizer,
trained BPEs, ~100 MB of prepared data) when they end, even when they end early: every run left it in the temp
directory. Each script runs as a subprocess with the slow parts stubbed out: building the Qwen tokenizer writes
a file into the scratch directory and exits, so the test takes seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

STUB = """
import runpy, sys
from pathlib import Path
import steel.tokenizer.qwen, steel.tokenizer.train

def build_qwen_tokenizer(out, *a, **kw):
    Path(out).mkdir(parents=True)
    (Path(out) / "tokenizer.json").write_text("{}")
    sys.exit(3)  # stands for anything that ends the run after the scratch directory has content

steel.tokenizer.qwen.build_qwen_tokenizer = build_qwen_tokenizer
steel.tokenizer.train.iter_corpus = lambda *a, **kw: iter(["x"])  # tokenizer_compression reads no corpus
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("script", ["data_throughput.py", "tokenizer_compression.py"])
def test_scratch_directory_is_removed(script, tmp_path):
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch_root)}
    args = ["--shared", str(tmp_path / "no-data"), "--skip-memory"] if script == "data_throughput.py" else []
    proc = subprocess.run([sys.executable, "-c", STUB, str(REPO / "bench" / script), *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]  # it did reach the tokenizer build, inside the scratch dir
    assert list(scratch_root.iterdir()) == []
