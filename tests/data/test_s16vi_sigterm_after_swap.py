"""SIGTERM (a scheduler's stop, `kill`) after `steel data prepare` / `steel data merge` moved the finished output
into OUT says what Ctrl-C says there: status 130 and the line that the output is complete and where (review VI of
session 16: test_s16i_interrupt_after_swap sends SIGINT only, and README says 'Ctrl-C or SIGTERM')."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_s16i_interrupt_after_swap import CHILD, SRC, output, setup  # noqa: F401  (same dir; setup: a fixture)

from steel.cli import main
from steel.data.chunks import read_manifest


def run(d: Path, at: str, *argv: str) -> subprocess.CompletedProcess:
    child = d / "child_sigterm.py"
    child.write_text(CHILD.replace("signal.SIGINT", "signal.SIGTERM"), encoding="utf-8")
    assert "signal.SIGTERM" in child.read_text(encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=SRC, STEEL_NO_PROGRESS="1")
    return subprocess.run([sys.executable, str(child), at, *argv], cwd=d, env=env, capture_output=True,
                          text=True, timeout=300)


def test_prepare_and_merge_sent_sigterm_after_their_swap(setup, tmp_path):  # noqa: F811
    out, ref = tmp_path / "out", tmp_path / "ref"
    assert main(["data", "prepare", str(setup / "data.yaml"), "--out", str(out), "--set", "chunk_tokens=3000"]) == 0
    assert main(["data", "prepare", str(setup / "data.yaml"), "--out", str(ref)]) == 0
    r = run(setup, "replaced the previous output", "data", "prepare", "data.yaml", "--out", str(out))
    assert r.returncode == 130, r.stderr[-3000:]
    new = read_manifest(ref)
    assert r.stderr.strip().splitlines()[-1] == (
        f"steel: interrupted after the output was complete: {out} holds the new output ({len(new['chunks'])} "
        f"chunks, {new['total_tokens']:,} tokens); nothing to run again"), r.stderr[-3000:]
    assert output(out) == output(ref)

    shards = [tmp_path / f"shard{i}" for i in range(2)]
    for i, d in enumerate(shards):
        assert main(["data", "prepare", str(setup / "data.yaml"), "--out", str(d), "--shard", f"{i}/2"]) == 0
    merged, mref = tmp_path / "merged", tmp_path / "mref"
    assert main(["data", "merge", str(mref), *map(str, shards)]) == 0
    r = run(setup, "merged 2 dirs", "data", "merge", str(merged), *map(str, shards))
    assert r.returncode == 130, r.stderr[-3000:]
    new = read_manifest(mref)
    assert r.stderr.strip().splitlines()[-1] == (
        f"steel: interrupted after the output was complete: {merged} holds the merged output "
        f"({len(new['chunks'])} chunks, {new['total_tokens']:,} tokens); the check of what each source kept may "
        f"not have run: `steel data inspect {merged}` runs it"), r.stderr[-3000:]
    assert output(merged) == output(mref)
