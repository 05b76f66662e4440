"""A resume's trim of metrics.jsonl keeps the file's permissions.

9ab47be writes the kept records to a temp file renamed over metrics.jsonl (a kill mid-rewrite lost them); the temp
file had the resuming process's default mode, so a metrics.jsonl made group-writable or private (chmod) for the
people who read a run's curves came back 0644 after each resume (the rewrite in place kept it).
"""

from __future__ import annotations

import json
import os

import pytest

from steel.train.metrics import MetricsLogger


@pytest.mark.parametrize("mode", [0o600, 0o664])
def test_a_trim_keeps_the_records_up_to_the_step_and_the_file_mode(tmp_path, mode):
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 7)]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(x + "\n" for x in lines) + '{"step": 7, "lo', encoding="utf-8")  # a line cut by a kill
    os.chmod(path, mode)
    old = os.umask(0o022)
    try:
        MetricsLogger(tmp_path, enabled=True, tensorboard=False, wandb=False, wandb_project="", config={}).truncate(4)
    finally:
        os.umask(old)
    assert path.read_text(encoding="utf-8") == "".join(x + "\n" for x in lines[:4])
    assert os.stat(path).st_mode & 0o777 == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]  # no temp file left
