"""Ctrl-C or SIGTERM while `steel data prepare` moves its finished output in leaves a whole output (chaos test,
session 14: signals at random moments of a rerun over a complete output).

The swap deletes the previous manifest and chunks, renames the staged ones in, then writes the new manifest. A
signal in between raised KeyboardInterrupt there: the previous output was gone and the new one had no manifest
(training refused the directory; README promised that an interrupted rerun leaves the previous output as it was).
Now the signal is held: the run returns its manifest with a WARNING naming the signal ("a warning says so and the
run ends normally"), the caller's SIGINT/SIGTERM handlers are its own again once prepare returns, and prepare run
in a thread other than the main one (where signal.signal raises ValueError) swaps without touching them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path

import pytest

from steel.config import from_dict
from steel.data.chunks import head_tail_md5, read_manifest
from steel.data.config import DataConfig
from steel.data.prepare import STAGING, prepare


def config(root: Path, chunk_tokens: int) -> DataConfig:
    return from_dict(DataConfig, {
        "root": str(root), "tokenizer": "unused (encoder passed in)", "chunk_tokens": chunk_tokens, "workers": 0,
        "sources": [{"name": "a", "path": ["a.jsonl"]}],
    })


def write_docs(root: Path) -> None:
    docs = [f"第{i}篇文档，讲的是第{i * 7 % 11}件事情。Document number {i}." for i in range(40)]
    (root / "a.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs),
                                  encoding="utf-8")


def signal_at_first_move(monkeypatch, signum: int) -> list:
    real_replace, sent = os.replace, []

    def replace(src, dst):  # the signal comes right after the first staged file is moved in
        real_replace(src, dst)
        if Path(src).parent.name == STAGING and Path(dst).parent.name != STAGING and not sent:
            sent.append(src)
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(os, "replace", replace)
    return sent


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_in_the_swap_is_held_the_output_whole_and_the_handlers_the_callers_again(tmp_path, enc, monkeypatch,
                                                                                     caplog, signum):
    write_docs(tmp_path)
    log = logging.getLogger("test.steel.s14v1")
    out, expected = tmp_path / "out", tmp_path / "expected"
    old = prepare(config(tmp_path, 64), out, encoder=enc, log=log, quiet=True)
    new = prepare(config(tmp_path, 48), expected, encoder=enc, log=log, quiet=True)  # the rerun's output, uninterrupted
    assert [c["md5"] for c in new["chunks"]] != [c["md5"] for c in old["chunks"]]
    got = []

    def mine(s, frame):
        got.append(s)

    before = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        sent = signal_at_first_move(monkeypatch, signum)
        with caplog.at_level(logging.WARNING, logger="test.steel.s14v1"):
            try:
                manifest = prepare(config(tmp_path, 48), out, encoder=enc, log=log, quiet=True)
            except KeyboardInterrupt as e:  # (caught: pytest would end the session)
                pytest.fail(f"the signal held during the swap ended the run: KeyboardInterrupt({e})")
        assert sent and manifest["chunks"] == read_manifest(out)["chunks"] == new["chunks"]
        assert all(head_tail_md5(out / c["file"]) == c["md5"] for c in manifest["chunks"])
        assert [(out / c["file"]).read_bytes() for c in manifest["chunks"]] == \
            [(expected / c["file"]).read_bytes() for c in new["chunks"]]
        assert not (out / STAGING).exists()
        assert f"{signal.Signals(signum).name} came while the finished output was moved into {out}" in caplog.text
        assert got == []  # held by prepare, not passed on
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_prepare_in_another_thread_leaves_the_signal_handlers_alone(tmp_path, enc):
    write_docs(tmp_path)
    log = logging.getLogger("test.steel.s14v1")
    out = tmp_path / "out"
    prepare(config(tmp_path, 64), out, encoder=enc, log=log, quiet=True)
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    result: list = []

    def run():
        try:
            result.append(prepare(config(tmp_path, 48), out, encoder=enc, log=log, quiet=True))
        except BaseException as e:  # (signal.signal off the main thread raises ValueError)
            result.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(120)
    assert len(result) == 1 and isinstance(result[0], dict), result
    assert result[0]["chunks"] == read_manifest(out)["chunks"] and not (out / STAGING).exists()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
