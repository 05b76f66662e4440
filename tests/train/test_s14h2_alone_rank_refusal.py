"""A rank that stopped before its config was read tells the other ranks under torchrun.

An argument error of one node's command line (argparse exits 2 in `steel.cli.main` before any config) or a
malformed LOCAL_RANK ended that rank alone: the others waited for it in the startup exchange until
parallel.timeout_minutes, then died in a DistStoreError traceback. Such a rank still knows its RANK and
WORLD_SIZE, so it now joins the exchange as a refused rank. Two ranks on CPU (gloo); each rank reports its exit
code and exits 0 when it is the refusal's 2. A rank whose RANK itself is malformed cannot; its error says so.
"""

from __future__ import annotations

import textwrap

import pytest
from train_fixtures import make_data_dir, rank_errors, tiny_config, torchrun_two

from steel.config import ConfigError
from steel.train.config import ParallelSection
from steel.train.distributed import init_distributed

# argv: CFG CASE: rank 1 alone gets a bad command line or launch variable
PER_RANK = textwrap.dedent("""
    import os, sys
    r, case = int(os.environ["RANK"]), sys.argv[2]
    if r == 1 and case == "local_rank":
        os.environ["LOCAL_RANK"] = "one"
    from steel.cli import main
    try:
        code = main([sys.argv[3], sys.argv[1], *(["--bogus"] if r == 1 and case == "argv" else [])])
    except SystemExit as e:  # argparse's exit
        code = e.code
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")

CASES = {
    "argv": ("train", "steel train: unrecognized arguments: --bogus"),
    "local_rank": ("train", "LOCAL_RANK='one': expected an integer (torchrun sets it; launch with torchrun)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_rank_stopped_before_its_config_stops_the_others_with_its_error(tmp_path, case):
    command, cause = CASES[case]
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    # timeout 1 minute: before the fix rank 0 waited that long in the exchange, then died in a traceback
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 1})
    r = torchrun_two(PER_RANK, tmp_path, cfg, case, command)
    errors = rank_errors(r, 2)
    assert f"steel: error: rank 1 stopped at startup: {cause}" in errors, r.stderr[-3000:]
    if case == "argv":  # rank 1 prints argparse's usage and error, as without torchrun
        prog, message = cause.split(": ", 1)
        own = f"{prog}: error: {message}"
        assert f"usage: {prog} " in r.stderr, r.stderr[-3000:]
        # the command's own prog (`steel train: error: ...`), not a `steel: error:` line
        assert r.stderr.splitlines().count(own) == 1, r.stderr[-3000:]
        assert errors == [f"steel: error: rank 1 stopped at startup: {cause}"], errors
    else:
        own = f"steel: error: {cause}"
        assert errors == sorted([own, f"steel: error: rank 1 stopped at startup: {cause}"]), errors
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "2", "RANK": "one"}, "RANK='one': expected an integer"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK 2: expected 0 <= RANK < WORLD_SIZE (2)"),
    ({"WORLD_SIZE": "two", "RANK": "1"}, "WORLD_SIZE='two': expected an integer"),
])
def test_a_rank_that_cannot_name_itself_says_the_others_wait(monkeypatch, env, message):
    for k, v in {"LOCAL_RANK": "0", **env}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as e:
        init_distributed(ParallelSection())
    assert str(e.value).startswith(message), str(e.value)
    assert str(e.value).endswith("; this rank cannot tell the other ranks, which wait for it until "
                                 "parallel.timeout_minutes"), str(e.value)


def test_one_process_launch_errors_are_unchanged(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ConfigError) as e:
        init_distributed(ParallelSection())
    assert str(e.value) == "RANK='one': expected an integer (torchrun sets it; launch with torchrun)"


@pytest.mark.parametrize("argv, told", [
    (["sft", "c.yaml", "--bogus"], "steel sft: unrecognized arguments: --bogus"),  # reported with the command's usage
    (["train", "--set"], "steel train: argument --set: expected one argument"),
    (["plot", "run", "--bogus"], None),  # one process's command: nobody waits for it
    (["--bogus", "train", "c.yaml"], "steel train: unrecognized arguments: --bogus"),  # a line of steel train all the same
    (["trian", "c.yaml"], None),  # no command: nothing says the others run one that waits
])
def test_which_argument_errors_are_told_under_torchrun(monkeypatch, capsys, argv, told):
    from steel import cli
    from steel.train import distributed

    got = []
    monkeypatch.setattr(distributed, "report_setup_error", lambda e: (got.append(str(e)), (_ for _ in ()).throw(e)))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and got == ([told] if told else []), got
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and ": error: " in err
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: never told
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert got == ([told] if told else [])
