"""One Steel process per output directory.

Two `steel train` (or `sft`, `data prepare`, `data merge`) processes writing into one directory overwrite
each other's checkpoints or chunks without a word: the same command started twice (a second tmux
window, a job scheduler retrying) is an easy mistake. `acquire(DIR, what)` takes an advisory lock on
`DIR/.steel.lock` (`fcntl.flock`) and returns the function that releases it; a second process is refused
with one error line naming the holder. The kernel drops the lock when its holder exits, kill -9
included, so a crash never leaves a stale lock behind (the file stays; it is not the lock).

Within one process the lock is re-entrant (counted): a notebook or a test building a second trainer on
the same run dir is one user, not two. Where `flock` is not supported (some network file systems) the
command goes on unlocked with a warning. Under torchrun only global rank 0 locks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from steel.cli import UserError

LOCK_NAME = ".steel.lock"
log = logging.getLogger("steel")
_held: dict[str, list] = {}  # resolved dir -> [open lock file, count] held by this process


def acquire(path: str | Path, what: str) -> Callable[[], None]:
    """Lock `path` (created if missing) for `what` (e.g. "steel train"); -> release(). UserError if held."""
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 speaks for the run
        return lambda: None
    try:
        import fcntl
    except ImportError:  # not POSIX
        return lambda: None
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if key in _held:
        _held[key][1] += 1
        return _releaser(key)
    f = open(path / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 -- kept open: the open file holds the lock
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "holder unknown"
        f.close()
        raise UserError(
            f"{path}: in use by another Steel process ({holder}); two {what} processes in one directory would "
            f"overwrite each other's files: wait for it to end, or use another directory"
        ) from None
    except OSError as e:  # e.g. a file system without flock
        f.close()
        log.warning("%s: cannot lock %s (%s); going on without protection against a second %s process",
                    path, LOCK_NAME, e.strerror or e, what)
        return lambda: None
    f.seek(0)
    f.truncate()
    f.write(f"{what}, pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    _held[key] = [f, 1]
    return _releaser(key)


def held_here(path: str | Path) -> bool:
    """Whether this process holds `path`'s lock (`acquire`): a second `flock` of its own would wait for itself."""
    return str(Path(path).resolve()) in _held


def _releaser(key: str) -> Callable[[], None]:
    done = False

    def release() -> None:  # idempotent: a second call does nothing
        nonlocal done
        entry = _held.get(key)
        if done or entry is None:
            return
        done = True
        entry[1] -= 1
        if entry[1] <= 0:
            del _held[key]
            entry[0].close()  # closing the file releases the lock

    return release


@contextlib.contextmanager
def dir_lock(path: str | Path, what: str) -> Iterator[None]:
    """`acquire` for the duration of a `with` block."""
    release = acquire(path, what)
    try:
        yield
    finally:
        release()
