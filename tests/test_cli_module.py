"""`python -m steel.cli` (the documented torchrun launch) and `python -m steel` report user errors as
one line with exit status 2, like the `steel` script, never a traceback."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["steel.cli", "steel"])
def test_module_launch_reports_user_error(module, tmp_path):
    missing = tmp_path / "nonexistent"
    r = subprocess.run(
        [sys.executable, "-m", module, "data", "inspect", str(missing)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("steel: error:"), r.stderr
    assert str(missing) in lines[0]


def test_output_path_errors_are_one_line(tmp_path, capsys, monkeypatch):
    # An output under a regular file (or on a read-only / full disk) was a NotADirectoryError traceback
    # from every command that writes; now one line naming the path, exit status 1.
    from steel.cli import main

    monkeypatch.delenv("STEEL_TRACEBACK", raising=False)
    (tmp_path / "a.txt").write_text("a document long enough to keep\n", encoding="utf-8")
    cfg = tmp_path / "d.yaml"
    cfg.write_text(f"root: {tmp_path}\ntokenizer: byte\nsources: [{{name: a, path: [a.txt], format: txt}}]\n")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["data", "prepare", str(cfg), "--out", str(blocker / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert err.startswith("steel: error: [Errno 20] Not a directory:") and str(blocker) in err
