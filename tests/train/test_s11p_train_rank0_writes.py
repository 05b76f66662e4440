"""Rank 0's own writes after startup's first checks (metrics.jsonl each logged step; config.yaml, the tokenizer
copy and the metrics truncation at the end of startup) stop every rank with their error under torchrun.

Rank 0 alone writes them: its full disk ended the other rank in its next collective with a gloo "Connection
closed by peer" traceback (under NCCL: a hang until parallel.timeout_minutes). Two ranks on CPU (gloo); each rank
reports its exit code and exits 0 when it is an OSError's 1, so torchrun never stops a rank before it has printed.
"""

from __future__ import annotations

import json
import textwrap

from train_fixtures import (
    METRICS_FULL_AT_STEP_2,
    assert_stopped_by,
    make_data_dir,
    rank_errors,
    tiny_config,
    torchrun_two,
)

# argv: CFG WHAT: rank 0's disk is full when it writes WHAT ("metrics": step 2's metrics.jsonl line,
# "config": config.yaml at the end of startup)
FULL_DISK = textwrap.dedent("""
    import errno, os, sys
    from steel.cli import main
    from steel.train import trainer
    r = int(os.environ["RANK"])
""") + METRICS_FULL_AT_STEP_2 + textwrap.dedent("""
    if r == 0 and sys.argv[2] == "config":
        def full_config(run_dir, config_yaml):
            raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "config.yaml.tmp"))
        trainer.write_run_config = full_config
    code = main(["train", sys.argv[1]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 1 else 3)
""")
HINT = " (STEEL_TRACEBACK=1 shows where)"


def test_rank0_metrics_write_error_stops_every_rank_at_that_step(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=4, micro_batch=2, parallel={"mode": "ddp"},
                      checkpoint={"every": 1, "keep": 5})
    errors = rank_errors(torchrun_two(FULL_DISK, tmp_path, cfg, "metrics"), 1)  # both ranks: an OSError's 1
    full = f"[Errno 28] No space left on device: '{tmp_path / 'run' / 'metrics.jsonl'}'"
    assert errors == [f"steel: error: {full}{HINT}",  # rank 0's own
                      f"steel: error: rank 0 stopped while logging step 2: {full}{HINT}"], errors  # rank 1's
    # as in one process: the run ends at the failed step, before its checkpoint; step 1's is the newest
    assert [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-1"]


def test_rank0_config_write_error_at_end_of_startup_stops_every_rank(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp"})
    errors = rank_errors(torchrun_two(FULL_DISK, tmp_path, cfg, "config"), 1)
    assert_stopped_by(errors, 0, f"[Errno 28] No space left on device: '{tmp_path / 'run' / 'config.yaml.tmp'}'")
    assert not (tmp_path / "run" / "config.yaml").exists() and not (tmp_path / "run" / "checkpoints").exists()


# argv: CFG [SET...]: rank 1 alone gets the `--set`s
PER_RANK = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    r = int(os.environ["RANK"])
    code = main(["train", sys.argv[1], *[x for s in sys.argv[2:] if r == 1 for x in ("--set", s)]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")


def test_rank1_missing_anneal_copy_stops_every_rank_before_rank0_writes(tmp_path):
    """anneal.dirs are spelled per node: rank 1's copy missing was refused on rank 1 alone, after the last
    startup collective, and rank 0 wrote config.yaml, then died in the first step's collective."""
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    hq = make_data_dir(tmp_path / "hq", [2000], seed=1, source="hq")
    cfg = tiny_config(tmp_path, [data], max_steps=4, micro_batch=2, parallel={"mode": "ddp"},
                      anneal={"step": 2, "dirs": [str(hq)]})
    missing = tmp_path / "node1" / "hq"
    errors = rank_errors(torchrun_two(PER_RANK, tmp_path, cfg, f"anneal.dirs=[{missing}]"), 2)
    assert_stopped_by(errors, 1, f"anneal.dirs: {missing}")
    assert not (tmp_path / "run" / "config.yaml").exists()  # a refused config is not the run's record
