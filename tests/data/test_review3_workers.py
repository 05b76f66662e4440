"""`steel data prepare` with worker processes, second review: the dead-worker error names the exit status
even when the executor's own thread is still reaping the workers."""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest

import steel.data.prepare as prep


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
