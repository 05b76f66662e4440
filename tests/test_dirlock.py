"""One Steel process per output directory (steel.dirlock): a second process is refused, a killed holder
frees the directory, and the commands that write a run/data directory take the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from steel.cli import UserError
from steel.cli import main as steel
from steel.dirlock import LOCK_NAME, acquire

HOLDER = textwrap.dedent("""
    import sys, time
    from steel.dirlock import acquire
    acquire(sys.argv[1], "steel train")
    print("held", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def held(tmp_path):
    """A second process holding tmp_path/'run' (as a running `steel train` would)."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "RANK": "0"})
    assert proc.stdout.readline().strip() == "held"
    yield run, proc
    proc.kill()
    proc.wait()


def test_second_process_is_refused_and_a_killed_holder_frees_the_dir(held):
    run, proc = held
    with pytest.raises(UserError, match=rf"{run}: in use by another Steel process \(steel train, pid {proc.pid} on "):
        acquire(run, "steel train")
    proc.send_signal(signal.SIGKILL)  # kill -9: the kernel drops the lock, no stale lock is left
    proc.wait()
    release = acquire(run, "steel train")
    assert f"pid {os.getpid()}" in (run / LOCK_NAME).read_text()
    release()


def test_reentrant_in_one_process_and_release_is_idempotent(tmp_path):
    a = acquire(tmp_path, "steel train")
    b = acquire(tmp_path, "steel train")  # a notebook building a second trainer on its run dir
    a()
    a()  # a second call changes nothing: b still holds it
    code = f"from steel.dirlock import acquire; acquire({str(tmp_path)!r}, 'x')"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "RANK": "0"})
    assert other.returncode != 0 and "in use by another Steel process" in other.stderr
    b()
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "RANK": "0"})
    assert other.returncode == 0, other.stderr


def test_train_and_prepare_refuse_a_directory_in_use(held, tmp_path, capsys):
    run, _ = held
    (tmp_path / "cfg.yaml").write_text(f"run_dir: {run}\ndata: {{dirs: [{tmp_path / 'nodata'}], seq_len: 64}}\n"
                                       "model: {config: tiny}\n")
    (tmp_path / "nodata").mkdir()
    assert steel(["train", str(tmp_path / "cfg.yaml")]) == 2
    assert "in use by another Steel process (steel train" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing of ours was written there
    (tmp_path / "d.yaml").write_text("sources: [{name: s, path: [x.jsonl]}]\ntokenizer: unused\n")
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n')
    assert steel(["data", "prepare", str(tmp_path / "d.yaml"), "--out", str(run)]) == 2
    assert "in use by another Steel process" in capsys.readouterr().err
    assert not (run / ".partial").exists()


def test_a_refused_prepare_leaves_the_running_ones_log_alone(held, tmp_path, capsys):
    run, _ = held
    (run / "prepare.log").write_text("the running prepare's log\n")
    (tmp_path / "d.yaml").write_text("sources: [{name: s, path: [x.jsonl]}]\ntokenizer: unused\n")
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n')
    assert steel(["data", "prepare", str(tmp_path / "d.yaml"), "--out", str(run)]) == 2
    assert "in use by another Steel process" in capsys.readouterr().err
    # untouched: the refused one used to append its own banner and an ERROR line to the holder's log
    assert (run / "prepare.log").read_text() == "the running prepare's log\n"

