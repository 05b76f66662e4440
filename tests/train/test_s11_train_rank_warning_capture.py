"""A rank above 0 prefixes its Python warnings in place of Python's own printer only: a program that routes
warnings into its logging (`logging.captureWarnings(True)`) before `fit()` kept getting them on stderr, past its
log handlers, once the rank's hook wrapped logging's."""

from __future__ import annotations

import io
import logging
import warnings

from steel.train import trainer as T


def test_captured_warnings_stay_in_the_programs_log_on_a_nonzero_rank(capsys, monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    steel_log, py_log = logging.getLogger("steel"), logging.getLogger("py.warnings")
    before, py_before = list(steel_log.handlers), list(py_log.handlers)
    record = io.StringIO()
    try:
        logging.captureWarnings(True)
        py_log.addHandler(logging.StreamHandler(record))
        T._rank_stderr_handler(1)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("rank 1's captured warning", UserWarning, stacklevel=1)
        assert "UserWarning: rank 1's captured warning" in record.getvalue()
        assert "captured warning" not in capsys.readouterr().err
        logging.captureWarnings(False)
        # Python's own printer is back: the rank's hook goes in its place, prefixed, once
        T._rank_stderr_handler(1)
        T._rank_stderr_handler(1)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("rank 1's printed warning", UserWarning, stacklevel=1)
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith("[rank 1] ") and err[0].endswith("UserWarning: rank 1's printed warning"), err
        assert not any(x.startswith("[rank 1] [rank 1]") for x in err), err
        assert "printed warning" not in record.getvalue()
    finally:
        logging.captureWarnings(False)
        steel_log.handlers[:] = before
        py_log.handlers[:] = py_before
