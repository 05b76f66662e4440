"""A refusal that one rank alone raises at startup stops every rank with that error under torchrun.

Rank 0 alone takes the run-dir lock, and each rank reads its own data copy: when rank 0's lock was held by another
run, or rank 1's data dir was missing, that rank printed the cause and the other died in its next collective
with a gloo "Connection closed by peer" traceback (under NCCL: a hang until parallel.timeout_minutes). Two ranks
on CPU (gloo); each rank reports its exit code and exits 0 when it is the refusal's 2, so torchrun never stops
a rank before it has printed.
"""

from __future__ import annotations

import os
import textwrap

from train_fixtures import assert_stopped_by, make_data_dir, rank_errors, tiny_config, torchrun_two

# argv: CFG [SET...]: rank 1 alone gets the `--set`s
PER_RANK = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    r = int(os.environ["RANK"])
    code = main(["train", sys.argv[1], *[x for s in sys.argv[2:] if r == 1 for x in ("--set", s)]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")


def test_rank0_lock_refusal_stops_every_rank_with_it(tmp_path):
    from steel import dirlock

    data = make_data_dir(tmp_path / "data", [3000, 2000])
    tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp"})
    release = dirlock.acquire(tmp_path / "run", "steel train")  # another run holds the dir
    try:
        r = torchrun_two(PER_RANK, tmp_path, tmp_path / "train.yaml")
    finally:
        release()
    errors = rank_errors(r, 2)
    assert len(errors) == 2, r.stderr[-3000:]
    held = f"{tmp_path / 'run'}: in use by another Steel process (steel train, pid {os.getpid()} "
    assert errors[0].startswith(f"steel: error: {held}"), errors  # rank 0's own
    assert errors[1].startswith(f"steel: error: rank 0 stopped at startup: {held}"), errors  # rank 1's
    assert errors[0][len("steel: error: "):] == errors[1][len("steel: error: rank 0 stopped at startup: "):]
    assert not (tmp_path / "run" / "train.log").exists()


def test_rank1_missing_data_copy_stops_every_rank_with_it(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp"})
    missing = tmp_path / "node1" / "data"  # node-local paths may differ per rank; this one is not there
    r = torchrun_two(PER_RANK, tmp_path, tmp_path / "train.yaml", f"data.dirs=[{missing}]")
    assert_stopped_by(rank_errors(r, 2), 1, str(missing))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no step was taken


# Rank 0's disk is full when it writes step 4's data.json (what it writes alone: the model, the optimizer, the JSON).
FULL_DISK = textwrap.dedent("""
    import errno, os, sys
    from steel.cli import main
    from steel.train import checkpoint
    r = int(os.environ["RANK"])
    if r == 0:
        write = checkpoint._write_json
        def full(path, obj):
            if path.parent.name == "step-4.tmp" and path.name == "data.json":
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return write(path, obj)
        checkpoint._write_json = full
    code = main(["train", sys.argv[1]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 1 else 3)
""")


def test_rank0_write_error_while_saving_stops_every_rank_with_it(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=4, micro_batch=2, parallel={"mode": "ddp"},
                      checkpoint={"every": 2, "keep": 5})
    errors = rank_errors(torchrun_two(FULL_DISK, tmp_path, cfg), 1)  # both ranks: exit code 1, an OSError's
    full = f"[Errno 28] No space left on device: '{tmp_path / 'run' / 'checkpoints' / 'step-4.tmp' / 'data.json'}'"
    hint = " (STEEL_TRACEBACK=1 shows where)"
    assert errors == [f"steel: error: {full}{hint}",  # rank 0's own
                      f"steel: error: rank 0 stopped while saving step 4: {full}{hint}"], errors  # rank 1's
    # step 2 stays the newest complete checkpoint: a resume goes on from it
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-2", "step-4.tmp"]
    assert (ckpts / "step-2" / "train_state.json").is_file()
