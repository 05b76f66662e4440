"""The tracer the swap kill tests (test_s15c_prepare_swap_kill, test_s15c2_merge_swap_kill,
test_s15c2_qwen_tokenizer_staged and those importing them) put into their child scripts, and the run of such a child.

A child script is `TRACER` followed by its own code, which sets `kill_at`, calls `trace_ops(names)` (and
`trace_from_swap(P)` for a prepare: the ops then count from the start of its swap, the block holding Ctrl-C and
SIGTERM; else it appends "start" itself where counting begins), runs the command and calls `write_trace(path)` in a
`finally`. Each traced file-system call from the start on is recorded; the child SIGKILLs itself before the call
numbered `kill_at` (0 = the first), so k = 0, 1, ... kills it before each of them in turn.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import steel
from steel.data.prepare import STAGING

SRC = str(Path(steel.__file__).resolve().parents[1])  # the children run the Steel the tests import

TRACER = r'''
import os, signal
from pathlib import Path

# the file-system calls traced in a prepare's swap; a merge links its chunks too: ("link", *SWAP_OPS)
SWAP_OPS = ("replace", "rename", "unlink", "remove", "rmdir", "mkdir", "fsync")
ops = []


def wrap(name):
    real = getattr(os, name)

    def call(*a, **kw):
        if ops:
            if len(ops) - 1 == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            ops.append(f"{name} {[os.fspath(x) if isinstance(x, (str, os.PathLike)) else x for x in a]}")
        return real(*a, **kw)

    setattr(os, name, call)


def trace_ops(names):
    for name in names:
        wrap(name)


def trace_from_swap(P):  # the ops count from the start of prepare's swap (the block holding Ctrl-C and SIGTERM)
    enter = P._signals_held.__enter__

    def entered(self):
        ops.append("start")
        return enter(self)

    P._signals_held.__enter__ = entered


def write_trace(path):
    Path(path).write_text("\n".join(ops[1:]) + "\n")
'''


def run_traced(tmp: Path, child: str, args: list[str]) -> tuple[int, list[str]]:
    """Run the child script `child` in a process of its own with `args` and the trace file's path last: its exit
    status (0, or -9 when it killed itself) and the ops it recorded."""
    script, trace = tmp / "child.py", tmp / "trace.txt"
    script.write_text(child, encoding="utf-8")
    trace.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=SRC)
    p = subprocess.run([sys.executable, str(script), *args, str(trace)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode in (0, -9), f"child failed ({p.returncode}):\n{p.stderr[-3000:]}"
    return p.returncode, trace.read_text().splitlines() if trace.exists() else []


def fail_second_move(monkeypatch, out: Path, error: BaseException | None = None) -> None:
    """The second staged file the swap moves into `out` raises `error` (EIO by default; KeyboardInterrupt stands
    for a kill there): the previous manifest and files are gone, the journal written."""
    real, moved = os.replace, []

    def replace(src, dst):
        if Path(src).parent.name == STAGING and Path(dst).parent == out:
            moved.append(src)
            if len(moved) == 2:
                raise OSError(5, "Input/output error") if error is None else error
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def killed_states(tmp: Path, old: Path, trace: list[str], kill: Callable[[Path, int], int]
                  ) -> Iterator[tuple[Path, Path, str, list[str]]]:
    """Every state a run leaves when killed before each op of its unkilled `trace`, and the unkilled end: for
    k = 0, ..., len(trace), tmp/out as a copy of `old`, `kill(out, k)` (the traced child run on it, killed before
    op k: its exit status) -> (out, tmp/rerun: a copy of the state the kill left for the next run alone, where: the
    kill point in words, raw: every path under out)."""
    out, rerun = tmp / "out", tmp / "rerun"
    for k in range(len(trace) + 1):
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(old, out)
        code = kill(out, k)
        assert (code == 0) == (k == len(trace)), (k, code)
        where = f"killed before {trace[k]!r} (step {k} of {len(trace)})" if k < len(trace) else "unkilled"
        raw = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
        shutil.rmtree(rerun, ignore_errors=True)
        shutil.copytree(out, rerun, symlinks=True)
        yield out, rerun, where, raw
