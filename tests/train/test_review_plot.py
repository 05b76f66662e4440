"""`steel plot RUN_DIR [--out PNG]`: bad input is one `steel: error:` line naming the file, exit 2."""

from __future__ import annotations

import json

import pytest

from steel.cli import main


def _run(tmp_path, steps=3):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "metrics.jsonl", "w", encoding="utf-8") as f:
        for s in range(1, steps + 1):
            f.write(json.dumps({"step": s, "loss": 5.0 - s, "lr": 1e-3 * s}) + "\n")
    return run


def test_plot_writes_png(tmp_path, capsys):
    run = _run(tmp_path)
    assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.strip() == str(run / "curves.png")


def test_plot_out_in_a_missing_dir_makes_it(tmp_path, capsys):
    """`--out plots/x.png` refused a missing folder, where `steel eval --out` makes it."""
    run = _run(tmp_path)
    out = tmp_path / "plots" / "sub" / "x.png"
    assert main(["plot", str(run), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_out_under_a_file_names_the_file(tmp_path, capsys):
    """Was an OSError: exit 1 and '[Errno ...]' without saying it is --out."""
    run = _run(tmp_path)
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "x.png"
    assert main(["plot", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"steel: error: {out}: cannot write the plot" in err and "Traceback" not in err


def test_plot_out_of_an_unknown_format_names_the_file(tmp_path, capsys):
    """Was matplotlib's "Format 'txt' is not supported ..." with no file named."""
    run = _run(tmp_path)
    out = tmp_path / "x.txt"
    assert main(["plot", str(run), "--out", str(out)]) == 2
    assert f"steel: error: {out}: cannot write the plot" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("what", ["missing", "no_metrics"])
def test_plot_of_a_dir_without_metrics_says_so(tmp_path, capsys, what):
    """A mistyped RUN_DIR said 'no logged steps to plot', as if the run had logged nothing yet."""
    run = tmp_path / "run"
    if what == "no_metrics":
        run.mkdir()
    assert main(["plot", str(run)]) == 2
    assert f"steel: error: {run / 'metrics.jsonl'}: not found" in capsys.readouterr().err
