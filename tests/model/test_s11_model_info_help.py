"""`steel model info --help` names every kind of CONFIG_OR_DIR it takes: a Steel run or checkpoint directory too
(8e02365 made it take them; the help still listed YAML, config name and HF dir only)."""

from __future__ import annotations

import pytest

from steel.cli import main as steel_main


def test_info_help_names_run_and_checkpoint_dirs(capsys):
    with pytest.raises(SystemExit) as e:
        steel_main(["model", "info", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Steel run or checkpoint dir" in text
