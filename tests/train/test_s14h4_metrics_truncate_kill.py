"""A kill while a resume trims metrics.jsonl keeps the records up to the checkpoint (chaos test, session 14).

A resume drops the records after its checkpoint's step (`MetricsLogger.truncate`). It rewrote metrics.jsonl in
place (`Path.write_text`: the file is emptied at open, then written), so a SIGKILL, OOM kill or node loss in
between left it empty or cut: the loss curve of every step up to the checkpoint was gone, and no resume brings
it back (the run goes on from the checkpoint; only later steps are logged again).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from train_fixtures import make_data_dir, tiny_config

# The resume's process: the first write to a file named metrics.jsonl* opened for writing (the trim) writes half
# its text, then the process is killed (os._exit: no cleanup runs, as under SIGKILL).
KILLED_IN_TRIM = """
import builtins, io, os, sys

real_open = io.open

class Cut:
    def __init__(self, f):
        self.f = f
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.f.__exit__(*exc)
    def write(self, s):
        self.f.write(s[: len(s) // 2])
        self.f.flush()
        os._exit(9)
    def __getattr__(self, name):
        return getattr(self.f, name)

def cut_open(file, mode="r", *args, **kwargs):
    f = real_open(file, mode, *args, **kwargs)
    if isinstance(file, (str, os.PathLike)) and os.path.basename(os.fspath(file)).startswith("metrics.jsonl") \\
            and ("w" in mode or "x" in mode):
        return Cut(f)
    return f

io.open = builtins.open = cut_open
from steel.cli import main
sys.exit(main())
"""


def steel(*args, script: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    head = [sys.executable, "-c", script] if script else [sys.executable, "-m", "steel.cli"]
    return subprocess.run([*head, *map(str, args)], env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def records(run) -> list[dict]:
    # Timing fields differ between runs; the rest is bit-for-bit the same.
    timing = {"tokens_per_s", "computed_per_s", "mfu", "mem_gb"}
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in timing} for x in lines]


def test_a_kill_while_a_resume_trims_metrics_keeps_the_records_before_it(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000, 2500])
    cfg = tiny_config(tmp_path, [data], max_steps=8, checkpoint={"every": 4, "keep": 10})
    run = tmp_path / "run"
    first = steel("train", cfg)
    assert first.returncode == 0, first.stderr[-3000:]
    reference = records(run)
    assert [r["step"] for r in reference] == list(range(1, 9))
    # A run killed after logging step 8, before its step-8 save landed: step-4 is the newest checkpoint.
    shutil.rmtree(run / "checkpoints" / "step-8")
    before = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()

    killed = steel("train", cfg, script=KILLED_IN_TRIM)
    assert killed.returncode == 9, killed.stderr[-3000:]
    # The resume goes on from step-4: records 1-4 are still the run's (5-8 may be there too, recomputed later).
    assert (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[:4] == before[:4]

    done = steel("train", cfg)
    assert done.returncode == 0, done.stderr[-3000:]
    assert records(run) == reference
