"""A refusal that one rank alone raises while it restores its data at a resume stops every rank with that error.

At a resume each rank reads its own `--add-data` copy and looks the registered chunks up in its own data dirs
(node-local copies): when rank 1's `--add-data` dir was missing on its node, rank 1 printed the cause and rank 0
died in the data check's collective with a gloo "Connection closed by peer" traceback (under NCCL: a hang
until parallel.timeout_minutes). Two ranks on CPU (gloo); each rank reports its exit code and exits 0 when it
is the refusal's 2, so torchrun never stops a rank before it has printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from train_fixtures import make_data_dir, tiny_config

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
    wrapper = tmp_path / "per_rank.py"
    wrapper.write_text(PER_RANK)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(wrapper),
           str(cfg), str(missing)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert "by peer" not in r.stderr, r.stderr[-3000:]  # gloo: "Connection closed by peer", "reset by peer"
    assert r.returncode == 0, r.stderr[-3000:]  # both ranks ended with exit code 2
    assert "rank 0 exit code 2" in r.stderr and "rank 1 exit code 2" in r.stderr, r.stderr[-3000:]
    errors = [x for x in r.stderr.splitlines() if x.startswith("steel: error:")]
    own = [x for x in errors if "stopped at startup" not in x]
    other = [x for x in errors if x.startswith("steel: error: rank 1 stopped at startup: ")]
    assert len(errors) == 2 and len(own) == 1 and len(other) == 1, errors
    assert str(missing) in own[0], own
    assert other[0] == own[0].replace("steel: error: ", "steel: error: rank 1 stopped at startup: ", 1)
    steps = [x for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert len(steps) == 2  # no step was taken after the refusal
