"""Ctrl-C or SIGTERM while `steel data prepare` moves its finished output in leaves a whole output (chaos test,
session 14: signals at random moments of a rerun over a complete output).

The swap deletes the previous manifest and chunks, renames the staged ones in, then writes the new manifest. A
signal in between raised KeyboardInterrupt there: the previous output was gone and the new one had no manifest
(training refused the directory; README promised that an interrupted rerun leaves the previous output as it was).
"""

from __future__ import annotations

import json
import logging
import os
import signal
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_output_is_swapped_in_waits_until_it_is_whole(tmp_path, enc, monkeypatch, signum):
    docs = [f"第{i}篇文档，讲的是第{i * 7 % 11}件事情。Document number {i}." for i in range(40)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs),
                                      encoding="utf-8")
    log = logging.getLogger("test.steel.data")
    out, expected = tmp_path / "out", tmp_path / "expected"
    old = prepare(config(tmp_path, 64), out, encoder=enc, log=log, quiet=True)
    new = prepare(config(tmp_path, 48), expected, encoder=enc, log=log, quiet=True)  # the rerun's output, uninterrupted
    assert [c["md5"] for c in new["chunks"]] != [c["md5"] for c in old["chunks"]]

    real_replace, sent = os.replace, []

    def replace(src, dst):  # the signal comes right after the first staged chunk is moved in
        real_replace(src, dst)
        if Path(src).parent.name == STAGING and Path(dst).parent.name != STAGING and not sent:
            sent.append(src)
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(os, "replace", replace)
    try:
        prepare(config(tmp_path, 48), out, encoder=enc, log=log, quiet=True)
    except KeyboardInterrupt:  # (the run may still report the signal: what it leaves is checked below)
        pass
    assert sent
    manifest = read_manifest(out)
    assert manifest["chunks"] == new["chunks"]
    assert all(head_tail_md5(out / c["file"]) == c["md5"] for c in manifest["chunks"])
    assert [(out / c["file"]).read_bytes() for c in manifest["chunks"]] == \
        [(expected / c["file"]).read_bytes() for c in new["chunks"]]
    assert not (out / STAGING).exists()
