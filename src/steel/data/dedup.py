"""Deduplication: exact (hash of case- and whitespace-folded text) and near (MinHash LSH).

Signatures are computed in the worker processes (`MinHasher`, vectorized numpy); the decision is
made in the main process in input order (`Deduper`), so the result does not depend on the worker
count, and the first occurrence of a document (earliest source, file, line) is the one kept.

MinHash: shingles are the character n-grams of the folded text, each hashed to 64 bits (polynomial
rolling hash + splitmix64 finalizer); permutation k maps a shingle hash x to
`(a_k * x + b_k) mod 2^64 >> 32` (multiply-shift, a_k odd; a_k, b_k the splitmix64 of a Weyl sequence
started at splitmix64(seed), the same on every machine), and the signature is the per-permutation
minimum, so P[sig_A[k] == sig_B[k]] ~ Jaccard(A, B). LSH splits the signature into b bands of r rows
(b, r chosen like datasketch: minimizing the false positive + false negative areas at the
threshold); a candidate sharing a band is confirmed only if its estimated Jaccard is >= threshold.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from steel.data.config import DedupConfig

_WS = re.compile(r"\s+")
_P = np.uint64(1_000_003)  # rolling-hash base
_BLOCK = 4096  # shingles per block: bounds the (num_perm, block) uint64 temporary to 4 MB at 128 perms


def fold(text: str) -> str:
    """The dedup view of a document: case-folded, whitespace runs -> one space."""
    return _WS.sub(" ", text.casefold()).strip()


def exact_hash(folded: str) -> int:
    return int.from_bytes(hashlib.blake2b(folded.encode("utf-8"), digest_size=8).digest(), "little")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shingle_hashes(folded: str, n: int) -> np.ndarray:
    """64-bit hashes of the character n-grams (the whole text if shorter than n), repeats included.

    NOTE: repeats do not change a minimum, and skipping np.unique (a sort) saves a third of the time.
    """
    cps = np.frombuffer(folded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(cps) == 0:
        return np.zeros(1, dtype=np.uint64)
    n = min(n, len(cps))
    m = len(cps) - n + 1
    h = np.zeros(m, dtype=np.uint64)
    for k in range(n):  # NOTE: uint64 array arithmetic wraps mod 2^64, which is the hash we want
        h = h * _P + cps[k : k + m]
    return _splitmix64(h)


def permutation_coefficients(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b), each (num_perm,) uint64, a odd: splitmix64 of a Weyl sequence started at splitmix64(seed).

    Fixed 64-bit arithmetic, so every machine and numpy version draws the same permutations: shards
    prepared on several machines are compared by `merge --near` through their stored signatures
    (`np.random.default_rng` streams are not promised across numpy versions).
    """
    start = _splitmix64(np.array([seed], dtype=np.uint64))  # (1,): array arithmetic wraps without a warning
    steps = np.arange(1, 2 * num_perm + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x = _splitmix64(start + steps)
    return x[0::2] | np.uint64(1), x[1::2]


class MinHasher:
    SCHEME = "splitmix64"  # how the permutations are drawn; recorded in the manifest, compared by merge --near

    def __init__(self, num_perm: int = 128, ngram: int = 5, seed: int = 1):
        self.a, self.b = permutation_coefficients(num_perm, seed)
        self.ngram = ngram

    def signature(self, folded: str) -> np.ndarray:
        """(num_perm,) uint32."""
        hashes = shingle_hashes(folded, self.ngram)
        sig = np.full(len(self.a), np.iinfo(np.uint32).max, dtype=np.uint64)
        a, b = self.a[:, None], self.b[:, None]
        for i in range(0, len(hashes), _BLOCK):
            block = hashes[None, i : i + _BLOCK]  # (1, m)
            v = (a * block + b) >> np.uint64(32)  # (num_perm, m)
            np.minimum(sig, v.min(axis=1), out=sig)
        return sig.astype(np.uint32)


def jaccard_estimate(s1: np.ndarray, s2: np.ndarray) -> float:
    return float(np.count_nonzero(s1 == s2)) / len(s1)


# NOTE: np.trapezoid is numpy >= 2.0; numpy 1.x (pyproject allows numpy>=1.26) names the same rule np.trapz,
# which 2.x deprecates, so the new name is used wherever it exists.
_trapezoid = np.trapezoid if hasattr(np, "trapezoid") else np.trapz


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(b, r) with b*r <= num_perm minimizing the weighted false positive/negative probability mass."""
    best, best_err = (1, num_perm), float("inf")
    x_fp = np.linspace(0.0, threshold, 201)
    x_fn = np.linspace(threshold, 1.0, 201)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _trapezoid(1 - (1 - x_fp**r) ** b, x_fp)
            fn = _trapezoid((1 - x_fn**r) ** b, x_fn)
            err = fp_weight * fp + fn_weight * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


class Deduper:
    """Input-order dedup decisions. `check(hash, sig)` -> None (new, now indexed) or the drop reason.

    Memory per kept document: exact 8-byte hash in a Python set (~60 B), the uint32 signature
    (4 * num_perm B) and one dict entry per band (~100 B each); see README, "Data preparation" for the
    measured size per million documents.
    """

    def __init__(self, cfg: DedupConfig):
        self.cfg = cfg
        self.seen: set[int] = set()
        self.bands, self.rows = optimal_bands(cfg.threshold, cfg.num_perm)
        # NOTE: band keys are Python's hash() of the band bytes (64-bit ints, ~4x smaller than the bytes);
        # a collision can only propose a candidate, which the signature comparison then confirms or not.
        # A bucket holds EVERY kept document with that band (an int for one, a list for more): keeping only
        # the first missed near duplicates of a later document that shared only that band.
        self.tables: list[dict[int, int | list[int]]] = [{} for _ in range(self.bands)]
        self.sigs = np.zeros((1024, cfg.num_perm), dtype=np.uint32)  # grown by doubling, in place
        self.count = 0

    def check(self, h: int | None, sig: np.ndarray | None) -> str | None:
        if self.cfg.exact and h is not None:
            if h in self.seen:
                return "dedup_exact"
        if self.cfg.near and sig is not None:
            r = self.rows
            keys = [hash(sig[i * r : (i + 1) * r].tobytes()) for i in range(self.bands)]
            cands: set[int] = set()
            for table, key in zip(self.tables, keys):
                j = table.get(key)
                if isinstance(j, list):
                    cands.update(j)
                elif j is not None:
                    cands.add(j)
            if cands:
                # all candidates at once: the share of equal hash values per row = the Jaccard estimate
                idx = np.fromiter(cands, dtype=np.int64, count=len(cands))
                same = np.count_nonzero(self.sigs[idx] == sig, axis=1)
                if float(same.max()) / len(sig) >= self.cfg.threshold:  # as `jaccard_estimate`
                    return "dedup_near"
            idx = self.count
            if idx == len(self.sigs):
                # NOTE: doubled in place (realloc, a remap for a large array: no copy; the new rows zeroed). While
                # malloc still serves the array from its heap's free space, realloc copies it (old + new) and moves
                # it to a mapping of its own; every later doubling is a remap.
                # np.concatenate with zeros_like held the old array, the zeros and the doubled copy at once: 4x the
                # signatures at that moment (64 GiB at 32M documents, beside the bands). No view of `sigs` outlives a
                # `check`, so nothing refers to the old buffer. refcheck=True refuses spuriously under a tracing
                # debugger (numpy#11538) and on Python 3.14 with numpy 2.4 (numpy#30991): the prepare would fail here.
                self.sigs.resize((2 * len(self.sigs), self.sigs.shape[1]), refcheck=False)
            self.sigs[idx] = sig
            self.count += 1
            for table, key in zip(self.tables, keys):
                j = table.get(key)
                if j is None:
                    table[key] = idx
                elif isinstance(j, list):
                    j.append(idx)
                else:
                    table[key] = [j, idx]
        if self.cfg.exact and h is not None:
            self.seen.add(h)
        return None
