"""The startup exchange (`_startup_errors`) in one process: one thread per rank over one in-memory store.

Every rank read every rank's note: world * world store requests (about a million at 1,000 ranks, all served by
the one store host, torchrun's agent on node 0). Now rank 0 alone reads the refused ranks' notes and writes one
verdict: the requests grow as the world does. The threads also run what the torchrun tests cannot time: a
restarted attempt that finds what a failed one left in the store (which outlives the workers under torchrun).
"""

from __future__ import annotations

import datetime
import threading
from collections import Counter

import pytest
import torch.distributed as dist

from steel.config import ConfigError
from steel.train import distributed

KEY = "steel/startup/1"


class Counting:
    """A store that counts the requests made to it (by method) and can kill its rank at one of them."""

    def __init__(self, store, counts: Counter, die_at=None):
        self.store, self.counts, self.die_at = store, counts, die_at

    def __getattr__(self, name):
        real = getattr(self.store, name)

        def call(*args):
            self.counts[name] += 1
            if self.die_at is not None and self.die_at(name, args):
                raise Killed(name)
            return real(*args)

        return call


class Killed(BaseException):
    """A rank's process ending in the middle of the exchange (not an Exception: nothing catches it)."""


def run_ranks(store, world: int, errors=None, die=None, timeout=30.0, delay=None, counts=None):
    """Run rank r's exchange in a thread each; rank r's outcome: ("ok", start name) or ("raised", the exception)."""
    counts = Counter() if counts is None else counts
    errors, die, delay = errors or {}, die or {}, delay or {}
    out: dict[int, tuple] = {}

    def rank(r):
        if r in delay:
            delay[r].wait(timeout)
        try:
            s = Counting(store, counts, die.get(r))
            out[r] = ("ok", distributed._startup_errors(s, r, world, errors.get(r), datetime.timedelta(seconds=timeout),
                                                       KEY))
        except BaseException as e:  # noqa: BLE001 - the outcome under test
            out[r] = ("raised", e)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    return threads, out, counts


def finish(threads, out):
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a rank is still waiting"
    return out


def hash_store(timeout=30.0):
    s = dist.HashStore()
    s.set_timeout(datetime.timedelta(seconds=timeout))
    return s


def test_accepted_ranks_agree_on_one_new_start_and_leave_no_key():
    store = hash_store()
    out = finish(*run_ranks(store, 8)[:2])
    names = {out[r][1] for r in range(8) if out[r][0] == "ok"}
    assert len(names) == 1 and len(out) == 8, out
    assert store.num_keys() == 0, store.list_keys()
    again = finish(*run_ranks(store, 8)[:2])  # a second start on the same store: another name
    assert {again[r][1] for r in range(8)} != names and len({again[r][1] for r in range(8)}) == 1


@pytest.mark.parametrize("refused", [[5], [0], [2, 6, 3]])
def test_refused_ranks_raise_their_own_error_and_the_others_the_first_ones(refused):
    world = 8
    errors = {r: ConfigError(f"rank {r}'s config is bad") for r in refused}
    out = finish(*run_ranks(hash_store(), world, errors)[:2])
    first = min(refused)
    more = {1: "", 2: " (and 1 more rank)"}.get(len(refused), f" (and {len(refused) - 1} more ranks)")
    for r in range(world):
        kind, e = out[r]
        assert kind == "raised" and type(e) is ConfigError, (r, out[r])
        assert str(e) == (f"rank {r}'s config is bad" if r in refused else
                          f"rank {first}{more} stopped at startup: rank {first}'s config is bad"), (r, str(e))


def test_a_non_refusal_is_an_os_error_on_the_other_ranks():
    out = finish(*run_ranks(hash_store(), 4, {2: RuntimeError("boom")})[:2])
    assert type(out[2][1]) is RuntimeError
    assert type(out[1][1]) is OSError and str(out[1][1]) == "rank 2 stopped at startup: RuntimeError: boom"


@pytest.mark.parametrize("world", [8, 64])
def test_the_store_requests_grow_with_the_world_not_its_square(world):
    counts = Counter()
    out = finish(*run_ranks(hash_store(), world, counts=counts)[:2])
    assert all(kind == "ok" for kind, _ in out.values()), out
    # each rank: a few requests of its own (publish or read the epoch, count itself, wait for and read the
    # verdict); rank 0 reads no accepted rank's note, the others no other rank's
    assert sum(counts.values()) <= 8 * world, counts
    assert counts["get"] <= 2 * world, counts


# A failed attempt's leftovers: rank `dead` of attempt 0 dies at its first request matching `at` (its process
# killed), the others are stopped by the timeout (torchrun's agent kills them); attempt 1 runs on the same store,
# its rank 0 arriving last.
STALE = {
    # rank 1 dies before it comes: rank 0's epoch and rank 2's count are left, short of world - 1
    "before_coming": (1, lambda op, args: op == "wait", {}),
    # the same, rank 2 refused (a transient error): its note is left too
    "a_refusal_left": (1, lambda op, args: op == "wait", {2: ConfigError("rank 2's disk is not mounted")}),
    # rank 1 dies after reading the verdict, before the last reader deletes it: the old epoch's verdict stays
    "after_the_verdict": (1, lambda op, args: op == "add" and args[0].endswith("/read"), {}),
}


@pytest.mark.parametrize("case", list(STALE))
def test_a_restart_does_not_take_what_a_failed_attempt_left(case):
    world = 3
    store = hash_store()
    dead, at, errors = STALE[case]
    threads, out, _ = run_ranks(store, world, errors, die={dead: at}, timeout=2.0)
    finish(threads, out)
    assert out[dead][0] == "raised" and isinstance(out[dead][1], Killed), out
    assert store.num_keys() > 0  # the failed attempt left keys behind
    old = {out[r][1] for r in out if out[r][0] == "ok"}
    go = threading.Event()
    threads, out, _ = run_ranks(store, world, delay={0: go})
    # rank 0 comes last, once the others have read what is there (and wait)
    threading.Timer(1.0, go.set).start()
    out = finish(threads, out)
    names = {out[r][1] for r in range(world) if out[r][0] == "ok"}
    assert len(names) == 1 and all(out[r][0] == "ok" for r in range(world)), out
    assert not names & old


def test_a_rank_that_never_comes_ends_a_refused_one_with_its_own_error():
    out = finish(*run_ranks(hash_store(), 3, errors={1: ConfigError("bad")}, die={2: lambda op, args: True},
                            timeout=1.0)[:2])
    assert type(out[1][1]) is ConfigError and str(out[1][1]) == "bad", out
