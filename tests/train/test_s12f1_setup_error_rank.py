"""A config error of one rank's `setup()` (its YAML, a `--set`) stops every rank with it under torchrun.

`steel train` parsed the config before any process group existed: the rank whose config was refused exited at
once, and the others (another node's agent) waited in the rendezvous or at init until parallel.timeout_minutes.
The README promises "Config checks that run before the process group starts are reported once it has". Two
ranks on CPU (gloo); each rank reports its exit code and exits 0 when it is the refusal's 2.
"""

from __future__ import annotations

import textwrap

import pytest
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


@pytest.mark.parametrize("bad", ["optim.lr=fast", "optim.no_such_field=1"])
def test_one_rank_config_error_stops_every_rank_with_it(tmp_path, bad):
    from steel.train.trainer import setup

    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 2})
    with pytest.raises(Exception) as refused:  # the error rank 1 gets, in this process
        setup(str(cfg), [bad])
    r = torchrun_two(PER_RANK, tmp_path, cfg, bad)
    assert_stopped_by(rank_errors(r, 2), 1, str(refused.value))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no step was taken
