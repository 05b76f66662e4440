"""An error line reaches stderr in one write, newline included: under torchrun every rank prints the same
error to one shared stderr, and print()'s separate newline write let two ranks' lines interleave
("steel: error: A steel: error: B" then two newlines), so a line-based reader lost one."""

from __future__ import annotations

import sys

from steel.cli import main


class Writes:
    def __init__(self):
        self.calls: list[str] = []

    def write(self, s: str) -> int:
        self.calls.append(s)
        return len(s)

    def flush(self) -> None:
        pass


def test_an_error_is_one_write_with_its_newline(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {lr: fast}\n", encoding="utf-8")
    w = Writes()
    monkeypatch.setattr(sys, "stderr", w)
    assert main(["train", str(bad)]) == 2
    errors = [c for c in w.calls if "steel: error:" in c]
    assert len(errors) == 1 and errors[0].startswith("steel: error: ") and errors[0].endswith("\n"), w.calls
    assert errors[0].count("\n") == 1 and "optim.lr: expected a number, got 'fast'" in errors[0]
