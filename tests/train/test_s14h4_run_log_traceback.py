"""An unexpected error (a bug, or a peer rank's death seen as gloo's 'Connection reset by peer') ends the command
with its traceback in the run log too (chaos test, session 14: kill one torchrun worker, read train.log).

`steel.cli` passed the exception itself as the log record's exc_info, which logging reads as a (type, value,
traceback) tuple: formatting failed, stderr got a '--- Logging error --- TypeError: ... not subscriptable' block
and train.log neither the error line nor its traceback.
"""

from __future__ import annotations

import pytest
from train_fixtures import make_data_dir, tiny_config

from steel import cli
from steel.train.trainer import Trainer


def test_an_unexpected_error_ends_the_run_log_with_its_traceback(tmp_path, monkeypatch, capsys):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2)

    def peer_gone(self):
        raise RuntimeError("Read error [127.0.0.1]:17636: Connection reset by peer (stand-in)")

    monkeypatch.setattr(Trainer, "train", peer_gone)
    with pytest.raises(RuntimeError, match="stand-in"):
        cli.main(["train", str(cfg)])
    err = capsys.readouterr().err
    assert "Logging error" not in err and "not subscriptable" not in err, err[-3000:]
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    tail = log[log.index("ERROR steel: error: RuntimeError: Read error [127.0.0.1]:17636"):]
    assert "Traceback (most recent call last):" in tail and "in peer_gone" in tail, tail
    assert tail.rstrip().endswith("RuntimeError: Read error [127.0.0.1]:17636: Connection reset by peer (stand-in)")
