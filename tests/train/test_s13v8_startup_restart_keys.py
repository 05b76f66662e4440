"""The startup refusal notes of a failed torchrun attempt do not reach the restarted workers.

torchrun's agent hosts the rendezvous store and keeps it across a worker restart (`--max-restarts`, static and
c10d rendezvous alike, torch 2.11 and 2.13): the notes `init_distributed` exchanged there stayed. A restarted
rank 0 read its peer's note from the failed attempt before that peer had written its new one: a rank refused
in the first attempt (a transient error) stopped every restart with `rank 1 stopped at startup: ...` though the
restarted rank 1 was accepted, so the restarts torchrun was given could never help. Two ranks on CPU (gloo);
rank 1 of the restarted attempt starts a few seconds late, as a slower node does.
"""

from __future__ import annotations

import textwrap

from train_fixtures import make_data_dir, tiny_config, torchrun_restarts

PER_RANK = textwrap.dedent("""
    import os, sys, time
    from steel.cli import main
    r, attempt = int(os.environ["RANK"]), int(os.environ["TORCHELASTIC_RESTART_COUNT"])
    if attempt == 1 and r == 1:
        time.sleep(4)  # rank 0 reads the notes before this rank writes its new one
    sets = ["--set", "parallel.mode=none"] if attempt == 0 and r == 1 else []  # refused in the first attempt only
    code = main(["train", sys.argv[1], *sets])
    print(f"attempt {attempt} rank {r} exit code {code}", file=sys.stderr)
    time.sleep(1 if attempt == 0 else 0)  # both ranks print before torchrun stops the other
    sys.exit(code)
""")


def test_a_restarted_attempt_does_not_read_the_failed_attempts_refusal(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 1})
    r = torchrun_restarts(PER_RANK, tmp_path, 1, cfg)
    own = "parallel.mode: 'none' with WORLD_SIZE > 1; use ddp or fsdp"
    errors = sorted(x for x in r.stderr.splitlines() if x.startswith("steel: error:"))
    # the first attempt alone was refused, on every rank
    assert errors == [f"steel: error: {own}", f"steel: error: rank 1 stopped at startup: {own}"], r.stderr[-3000:]
    for line in ("attempt 0 rank 0 exit code 2", "attempt 0 rank 1 exit code 2", "attempt 1 rank 0 exit code 0",
                 "attempt 1 rank 1 exit code 0"):
        assert line in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "step-2").is_dir()
