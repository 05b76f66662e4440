"""`steel train --help` (or `steel sft --help`) on one rank of a torchrun launch: that rank prints the help and
ends as without torchrun (exit 0), and the other ranks stop with `rank N stopped at startup: ...` (exit 2).
argparse's help exited at once without telling them, and they waited for it in the startup exchange until
parallel.timeout_minutes."""

from __future__ import annotations

import textwrap

from train_fixtures import make_data_dir, tiny_config, torchrun_two

# argv: CFG COMMAND: rank 1 alone adds --help
PER_RANK = textwrap.dedent("""
    import os, sys
    r = int(os.environ["RANK"])
    from steel.cli import main
    try:
        code = main([sys.argv[2], sys.argv[1], *(["--help"] if r == 1 else [])])
    except SystemExit as e:  # argparse's exit
        code = e.code
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0)
""")


def test_help_on_one_rank_stops_the_others(tmp_path):
    command = "train"  # `steel sft` shares the parser class (_Parser) and its startup_exchange default
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    # before the fix rank 0 waited parallel.timeout_minutes (6 s here), then ended with its own error
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 0.1})
    r = torchrun_two(PER_RANK, tmp_path, cfg, command)
    assert r.returncode == 0 and "by peer" not in r.stderr, r.stderr[-3000:]
    assert "rank 0 exit code 2" in r.stderr and "rank 1 exit code 0" in r.stderr, r.stderr[-3000:]
    assert f"usage: steel {command} " in r.stdout, r.stdout[-3000:]  # rank 1's help, as without torchrun
    errors = [x for x in r.stderr.splitlines() if x.startswith("steel: error:")]
    assert errors == [f"steel: error: rank 1 stopped at startup: steel {command}: --help: this rank printed the "
                      "help instead of running"], r.stderr[-3000:]
    assert not (tmp_path / "run").exists()
