"""A config error of `setup()` on EVERY rank (the common case: one config file, copied to each node) under torchrun.

Each rank joins the process group (report_setup_error, 12f4dc5), finds in the one startup collective that every
rank failed, and ends with its own error, once, exit status 2: no rank waits for an exchange of errors that no
rank needs, and none reports another's error as `rank N stopped at startup`.
"""

from __future__ import annotations

import textwrap

from train_fixtures import make_data_dir, rank_errors, tiny_config, torchrun_two

PER_RANK = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    r = int(os.environ["RANK"])
    code = main(["train", sys.argv[1], *[x for s in sys.argv[2:] for x in ("--set", s)]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")


def test_every_rank_config_error_each_rank_reports_its_own_once(tmp_path):
    from steel.train.trainer import setup

    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 2})
    bad = "optim.lr=fast"
    try:
        setup(str(cfg), [bad])
        raise AssertionError("setup accepted " + bad)
    except Exception as e:  # the error each rank gets
        expected = f"steel: error: {e}"
    r = torchrun_two(PER_RANK, tmp_path, cfg, bad)
    assert rank_errors(r, 2) == [expected, expected], r.stderr[-3000:]
    assert "stopped at startup" not in r.stderr
    assert not (tmp_path / "run").exists() or not (tmp_path / "run" / "metrics.jsonl").exists()
