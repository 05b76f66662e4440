"""A refusal that one rank alone raises while it restores its data at a resume stops every rank with that error.

At a resume each rank reads its own `--add-data` copy and looks the registered chunks up in its own data dirs
(node-local copies): when rank 1's `--add-data` dir was missing on its node, rank 1 printed the cause and rank 0
died in the data check's collective with a gloo "Connection closed by peer" traceback (under NCCL: a hang
until parallel.timeout_minutes). Two ranks on CPU (gloo); each rank reports its exit code and exits 0 when it
is the refusal's 2, so torchrun never stops a rank before it has printed.
"""

from __future__ import annotations

import textwrap

from train_fixtures import assert_stopped_by, make_data_dir, rank_errors, tiny_config, torchrun_two

# argv: CFG [ADD_DATA...]: rank 1 alone gets the `--add-data`s
PER_RANK = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    r = int(os.environ["RANK"])
    code = main(["train", sys.argv[1], "--set", "max_steps=4",
                 *[x for a in sys.argv[2:] if r == 1 for x in ("--add-data", a)]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")


def test_rank1_missing_add_data_copy_at_resume_stops_every_rank_with_it(tmp_path):
    from steel.cli import main

    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp"})
    assert main(["train", str(cfg)]) == 0  # one process: checkpoint step-2 to resume from
    assert (tmp_path / "run" / "checkpoints" / "step-2").is_dir()
    missing = tmp_path / "node1" / "more"  # the copy of the appended data missing on rank 1's node
    assert_stopped_by(rank_errors(torchrun_two(PER_RANK, tmp_path, cfg, missing), 2), 1, str(missing))
    steps = [x for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert len(steps) == 2  # no step was taken after the refusal
