"""Exact data order without storing it: a keyed permutation plus a short list of segments.

Every sample of every registered chunk has a global id in `[0, N)`. The order of an epoch is a keyed
pseudo-random permutation of those ids, computed on demand (O(1) memory, O(1) per index) by a
Feistel network over the next even power of two, with cycle walking to stay inside `[0, N)`.

Appending `M` samples when `k` positions of the epoch have been consumed starts a new *segment* of
length `(L - k) + M` (L = the epoch's length so far) ordered by a fresh permutation `Q`: position `j`
of the segment is `u = Q(j)`, which means the old order's position `k + u` when `u < L - k` (a sample
not consumed yet), else new sample `base + u - (L - k)`. Old samples already consumed are never
repeated, none is lost, and the state is one small dict per append. A `replace` segment (keep = 0)
drops the rest of the epoch and orders only the new ids, which is how an annealing phase switches
the mixture.

State: `{seed, epoch, segments}`; `EpochOrder.ids(positions)` recomputes sample ids for any positions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a cheap, well-mixing bijection on uint64 (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def derive_key(*parts: int) -> int:
    """A 64-bit key from integers (seed, epoch, segment index...), stable across machines and versions."""
    h = np.array([_GOLDEN], dtype=np.uint64)
    for p in parts:
        h = _mix64(h ^ np.array([int(p) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    return int(h[0])


class FeistelPermutation:
    """A keyed bijection of `[0, n)`: balanced Feistel network over 2^(2h) >= n, cycle-walked into range."""

    ROUNDS = 4  # NOTE: 4 rounds of a strong round function give a pseudo-random permutation (Luby-Rackoff)

    def __init__(self, n: int, key: int):
        if n < 1:
            raise ValueError(f"permutation size must be >= 1, got {n}")
        self.n = int(n)
        half = max(1, (max(1, (self.n - 1).bit_length()) + 1) // 2)
        self.half = np.uint64(half)
        self.mask = np.uint64((1 << half) - 1)
        self.round_keys = [np.uint64(derive_key(key, r)) for r in range(self.ROUNDS)]

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half, x & self.mask
        for k in self.round_keys:
            left, right = right, left ^ (_mix64(right ^ k) & self.mask)
        return (left << self.half) | right

    def __call__(self, idx: np.ndarray | int) -> np.ndarray:
        x = np.asarray(idx, dtype=np.uint64)
        if x.size and int(x.max()) >= self.n:
            raise IndexError(f"index {int(x.max())} out of range for a permutation of {self.n}")
        y = self._encrypt(x)
        # NOTE: cycle walking: the domain is < 4n, so each element needs < 4 passes on average and the
        # result stays a bijection of [0, n) (Black & Rogaway 2002).
        out = y >= self.n
        while out.any():
            y[out] = self._encrypt(y[out])
            out = y >= self.n
        return y.astype(np.int64)


@dataclass
class Segment:
    """Positions `[start, start + keep + new_count)` of an epoch, shuffled together by key `key`."""

    start: int  # first epoch position this segment orders
    keep: int  # positions `[start, start + keep)` of the previous order it re-shuffles
    new_base: int  # first new sample id it brings in
    new_count: int  # how many new sample ids (`[new_base, new_base + new_count)`)
    key: int  # permutation key

    @property
    def length(self) -> int:
        return self.keep + self.new_count

    @property
    def end(self) -> int:
        return self.start + self.length


class EpochOrder:
    """The order of one epoch as a list of segments; `ids(positions)` maps epoch positions to sample ids."""

    def __init__(self, segments: list[Segment]):
        if not segments:
            raise ValueError("an epoch order needs at least one segment")
        self.segments = segments
        self._perms = [FeistelPermutation(max(1, s.length), s.key) for s in segments]

    @classmethod
    def fresh(cls, base: int, count: int, key: int) -> EpochOrder:
        return cls([Segment(0, 0, base, count, key)])

    @property
    def length(self) -> int:
        return self.segments[-1].end

    def append(self, consumed: int, new_base: int, new_count: int, key: int, replace: bool = False) -> None:
        """Merge `new_count` ids starting at `new_base` with the unconsumed rest of the epoch (or replace it)."""
        if not 0 <= consumed <= self.length:
            raise ValueError(f"consumed {consumed} outside the epoch [0, {self.length}]")
        keep = 0 if replace else self.length - consumed
        seg = Segment(consumed, keep, new_base, new_count, key)
        self.segments.append(seg)
        self._perms.append(FeistelPermutation(max(1, seg.length), key))

    def ids(self, positions: np.ndarray) -> np.ndarray:
        """Sample ids at epoch positions (int64 array of any shape, each in `[0, length)`)."""
        pos = np.asarray(positions, dtype=np.int64)
        if pos.size and (int(pos.min()) < 0 or int(pos.max()) >= self.length):
            raise IndexError(f"epoch position out of range [0, {self.length})")
        flat = pos.reshape(-1).copy()
        out = np.full(flat.shape, -1, dtype=np.int64)
        todo = np.ones(flat.shape, dtype=bool)
        # Walk segments from the newest: a position either resolves to a new id of that segment, or to a
        # position of the previous order (which an older segment resolves).
        for seg, perm in zip(reversed(self.segments), reversed(self._perms)):
            sel = todo & (flat >= seg.start) & (flat < seg.end)
            if not sel.any():
                continue
            u = perm(flat[sel] - seg.start)
            is_new = u >= seg.keep
            idx = np.flatnonzero(sel)
            out[idx[is_new]] = seg.new_base + (u[is_new] - seg.keep)
            todo[idx[is_new]] = False
            flat[idx[~is_new]] = seg.start + u[~is_new]
        assert not todo.any(), "epoch order segments do not cover every position"
        return out.reshape(pos.shape)

    def state_dict(self) -> list[dict]:
        return [asdict(s) for s in self.segments]

    @classmethod
    def from_state(cls, segments: list[dict]) -> EpochOrder:
        return cls([Segment(**{k: int(v) for k, v in s.items()}) for s in segments])
