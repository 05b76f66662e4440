"""Tests written by a mutation audit of `steel.cli` (session 15, D): a stand-in command module raises each kind
of error, and `main`'s exit status and stderr are checked against README's contract."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import steel.cli as cli

FAKE = textwrap.dedent("""
    import errno, sys, types
    import steel.cli as cli
    from steel.config import ConfigError

    def register(sub):
        p = sub.add_parser("boom")
        p.add_argument("kind")
        p.set_defaults(func=run)

    def run(args):
        err = {"config": ConfigError("train.lr: expected a number, got 'x'"),
               "interrupt": KeyboardInterrupt(),
               "oserror": OSError(errno.ENOSPC, "No space left on device", "/full/disk/ckpt"),
               "pipe": BrokenPipeError(errno.EPIPE, "Broken pipe")}.get(args.kind)
        if err is not None:
            raise err
        return 0

    mod = types.ModuleType("s15d_fake_cmd")
    mod.register = register
    sys.modules["s15d_fake_cmd"] = mod
    cli.COMMAND_MODULES = ["s15d_fake_cmd"]
""")


@pytest.fixture
def fake(monkeypatch):
    ns: dict = {}
    # before FAKE, which sets cli.COMMAND_MODULES itself: set after it, monkeypatch kept the fake list as the
    # value to restore, and every later test of the session parsed a steel with no train or sft command
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["s15d_fake_cmd"])
    exec(FAKE, ns)
    # a command whose stderr is no terminal sets it for the rest of the process when transformers is not
    # imported yet (steel.runlog.quiet_hf_progress_bars): not past this test
    hub = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
    yield
    sys.modules.pop("s15d_fake_cmd", None)
    if hub is None:
        os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    else:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = hub


@pytest.mark.parametrize("kind, status, line", [
    ("config", 2, "steel: error: train.lr: expected a number, got 'x'\n"),
    ("interrupt", 130, "steel: interrupted\n"),
    # a full disk is a failed run (1), not a usage error (2): one line, no traceback
    ("oserror", 1, "steel: error: [Errno 28] No space left on device: '/full/disk/ckpt' "
                   "(STEEL_TRACEBACK=1 shows where)\n"),
    ("ok", 0, ""),
])
def test_each_kind_of_error_has_its_exit_status_and_one_line(fake, capsys, monkeypatch, kind, status, line):
    monkeypatch.delenv("STEEL_TRACEBACK", raising=False)
    assert cli.main(["boom", kind]) == status
    assert capsys.readouterr().err == line


def test_steel_traceback_lets_the_os_error_through(fake, monkeypatch):
    monkeypatch.setenv("STEEL_TRACEBACK", "1")
    with pytest.raises(OSError, match="No space left on device"):
        cli.main(["boom", "oserror"])


def test_a_closed_pipe_ends_quietly_with_status_141():
    # `steel ... | head`: run in a process of its own, since main points the process's stdout at /dev/null
    code = FAKE + "sys.exit(cli.main(['boom', 'pipe']))\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (141, "")


def test_arguments_no_command_knows_are_refused(fake, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["boom", "ok", "--lr", "3"])
    assert e.value.code == 2
    assert "steel boom: error: unrecognized arguments: --lr 3" in capsys.readouterr().err  # the command's usage


def test_no_command_prints_the_help_and_exits_2(fake, capsys):
    assert cli.main([]) == 2
    assert "usage: steel" in capsys.readouterr().out


def test_a_missing_dependency_of_a_command_module_is_not_taken_for_an_absent_area(tmp_path, monkeypatch):
    (tmp_path / "s15d_area_with_missing_dep.py").write_text("import s15d_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["s15d_area_not_built_yet"])
    cli.build_parser()  # an area module not there at all is skipped
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["s15d_area_with_missing_dep"])
    with pytest.raises(ModuleNotFoundError, match="s15d_no_such_dependency"):
        cli.build_parser()


def test_a_command_without_a_terminal_leaves_later_library_calls_to_steel_no_progress(fake, monkeypatch):
    from transformers.utils import logging as hf_logging

    import steel.runlog as runlog

    monkeypatch.delenv("STEEL_NO_PROGRESS", raising=False)
    monkeypatch.setattr(runlog.console, "_force_terminal", False)  # stderr is a pipe
    was = hf_logging.is_progress_bar_enabled()
    try:
        hf_logging.enable_progress_bar()
        assert cli.main(["boom", "ok"]) == 0
        assert not hf_logging.is_progress_bar_enabled()  # the command turned them off
        hf_logging.enable_progress_bar()  # the notebook's user turns them on again
        runlog.quiet_hf_progress_bars()  # a library call (load_model) after the command
        assert hf_logging.is_progress_bar_enabled()
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()
