"""Ranks above 0 print Python warnings through `_rank_stderr_handler`'s showwarning, which must lose a warning
as Python's own handler does when stderr is gone (closed at launch: None; a closed pipe: OSError), not stop the
rank; and `--add-data D --add-data D/` at a fresh start is recorded once, as add_data records it at a resume."""

from __future__ import annotations

import json
import logging
import sys
import warnings

import pytest
from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel
from steel.train import trainer as T


class _ClosedPipe:
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        pass


@pytest.mark.parametrize("stderr", [None, _ClosedPipe()], ids=["no-stderr", "closed-pipe"])
def test_a_rank_warning_without_a_stderr_is_lost_not_raised(monkeypatch, stderr):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    log = logging.getLogger("steel")
    before = list(log.handlers)
    try:
        T._rank_stderr_handler(1)
        monkeypatch.setattr(sys, "stderr", stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            # Python's own handler (warnings._showwarnmsg_impl) returns when sys.stderr is None and passes on
            # OSError; the wrapper raised AttributeError / BrokenPipeError here, out of the training step
            warnings.warn("rank 1's warning", UserWarning, stacklevel=1)
    finally:
        log.handlers[:] = before


def test_add_data_twice_at_a_fresh_start_is_recorded_once(tmp_path):
    d1 = make_data_dir(tmp_path / "d1", [900, 700], seed=1)
    d2 = make_data_dir(tmp_path / "d2", [800], seed=2, source="books", prefix="b")
    cfg = tiny_config(tmp_path, [d1], max_steps=1, checkpoint={"every": 1, "keep": 5})
    assert steel(["train", str(cfg), "--add-data", str(d2), "--add-data", f"{d2}/"]) == 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-1" / "data.json").read_text())
    assert state["extra_dirs"] == [str(d2.resolve())]
