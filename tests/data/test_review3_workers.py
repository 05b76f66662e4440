"""`steel data prepare` with worker processes, second review: the dead-worker error names the exit status
even when the executor's own thread is still reaping the workers, and the workers are forked before the
main process starts any thread of its own (progress bar, Arrow's readers)."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest

import steel.data.prepare as prep
import steel.runlog as runlog
from steel.config import from_dict
from steel.data.config import DataConfig


class _Reaped:
    """A worker process whose exit status shows only after a few reads: ProcessPoolExecutor's thread
    reaps its workers (waitpid) while it fails the futures, and a read racing it sees None (ECHILD)."""

    def __init__(self, code: int, late: int):
        self.code, self.late = code, late

    @property
    def exitcode(self):
        self.late -= 1
        return None if self.late >= 0 else self.code


def test_dead_worker_error_waits_for_the_exit_status():
    # Before: "exit status unknown" about 1 run in 6 of test_review2_workers (the -9 was read too early).
    future = Future()
    future.set_exception(BrokenProcessPool("a process terminated abruptly"))
    metas = [[(0, "a.jsonl", 251, 0), (0, "a.jsonl", 259, 0)]]
    with pytest.raises(ChildProcessError, match=r"exit status -9;") as e:
        prep._batch_result(future, metas, [_Reaped(-9, 3), _Reaped(-15, 5)])
    assert "a.jsonl:251 to a.jsonl:259" in str(e.value)


class _Bytes:  # a stand-in tokenizer: one id per UTF-8 byte, EOS 0
    eos_id, vocab_size, fingerprint, special_ids = 0, 257, "f" * 64, {}

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


def test_workers_are_forked_before_the_progress_bar_and_the_first_read(tmp_path, monkeypatch):
    # ProcessPoolExecutor forks its workers at the first submit, which came after the progress bar had started
    # its refresh thread (a terminal) and the first batch had been read (Arrow's thread pools, for parquet):
    # a fork while another thread holds a lock (stderr's, an allocator's) leaves it locked in the worker.
    # multiprocessing.Pool forked at its creation, before either.
    docs = [f"document {i}: " + "words " * 10 for i in range(50)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs), encoding="utf-8")
    events: list[str] = []
    real_bar, real_read = runlog.progress_bar, prep.SourceReader.read_file

    def bar(*a, **k):
        events.append(f"progress bar, {len(_workers())} workers")
        return real_bar(*a, **k)

    def read_file(self, path):
        events.append(f"read, {len(_workers())} workers")
        return real_read(self, path)

    pools = []
    real_pool = prep.ProcessPoolExecutor

    def pool(*a, **k):
        pools.append(real_pool(*a, **k))
        return pools[-1]

    def _workers():
        return prep._worker_processes(pools[-1]) if pools else []

    monkeypatch.setattr(runlog, "progress_bar", bar)
    monkeypatch.setattr(prep.SourceReader, "read_file", read_file)
    monkeypatch.setattr(prep, "ProcessPoolExecutor", pool)
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": "unused", "workers": 2, "batch_chars": 100,
                                 "dedup": {"exact": False, "near": False},
                                 "sources": [{"name": "a", "path": ["a.jsonl"]}]})
    m = prep.prepare(cfg, tmp_path / "out", encoder=_Bytes(), log=logging.getLogger("t"), quiet=True)
    assert m["sources"]["a"]["kept"] == 50
    assert events == ["progress bar, 2 workers", "read, 2 workers"], events
