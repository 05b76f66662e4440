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
