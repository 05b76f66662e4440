"""A read error at a file's first bytes is that file's one `unreadable_file`, for every format (the UTF-16/32
byte-order-mark check reads them first)."""

from __future__ import annotations

import errno
import io

import pytest

from steel.config import from_dict
from steel.data import sources
from steel.data.config import DataConfig
from steel.data.sources import SourceReader


class _FailingFile(io.BytesIO):
    """A file that opens but whose reads fail, as on a network mount that lost the server (EIO)."""

    def read(self, *a):
        raise OSError(errno.EIO, "Input/output error")

    read1 = readinto = read


@pytest.mark.parametrize("name", ["a.jsonl", "a.json", "a.csv", "a.txt", "a.jsonl.zst"])
def test_a_read_error_at_the_start_is_one_unreadable_file(tmp_path, monkeypatch, name):
    p = tmp_path / name
    p.write_bytes(b'{"text": "un"}\n')
    monkeypatch.setattr(sources, "open", lambda path, mode="r": _FailingFile(), raising=False)
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["x"]}]})
    done = []
    r = SourceReader(cfg.sources[0], cfg, progress=done.append)
    got = [(it.line, it.doc, it.reason, it.detail) for it in r.read_file(p)]  # before: OSError out of read_file
    assert got == [(0, None, "unreadable_file", "read error after line/record 0: [Errno 5] Input/output error")]
    assert sum(done) == p.stat().st_size  # the progress bar counts the file once
