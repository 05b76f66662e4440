"""The near-dup index grows its signature array in place.

Scale audit (session 16): `Deduper` doubled its (capacity, num_perm) uint32 signature array with
`np.concatenate([sigs, np.zeros_like(sigs)])`, which holds the old array, the zeros and the doubled copy at once:
3x the old array's bytes resident beside it at every doubling (measured: +192 MiB over a 64 MiB array; 48 GiB
beside 16 GiB at 32M documents of 128 permutations, on top of the band tables), the peak that decides whether a
prepare shard fits its machine. Now the array is resized in place (realloc: a remap for a large array), +1x for its
zeroed new half. Checked by the process's peak RSS over the one `check` that doubles the array (VmHWM reset
through /proc/self/clear_refs), and by the array's content after it.
"""

from __future__ import annotations

import numpy as np

from steel.data.config import DedupConfig
from steel.data.dedup import Deduper


def _kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(next(ln for ln in f if ln.startswith(key + ":")).split()[1])


def test_signature_array_doubles_without_a_copy_beside_it():
    d = Deduper(DedupConfig(exact=False, near=True))
    perms = d.sigs.shape[1]
    rng = np.random.default_rng(0)
    first = rng.integers(0, 2**32, (3, perms), dtype=np.uint32)
    for s in first:
        assert d.check(None, s) is None
    # a full index of 2^17 documents (64 MiB of signatures, resident as a filled one is): the next one doubles it
    rows = 1 << 17
    sigs = np.ones((rows, perms), dtype=np.uint32)
    sigs[:3] = first
    d.sigs, d.count = sigs, rows
    del sigs
    new = rng.integers(0, 2**32, perms, dtype=np.uint32)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    base = _kib("VmRSS")
    assert d.check(None, new) is None
    added = (_kib("VmHWM") - base) * 1024
    old_bytes = rows * perms * 4
    assert d.sigs.shape == (2 * rows, perms) and d.sigs.dtype == np.uint32 and d.count == rows + 1
    assert np.array_equal(d.sigs[:3], first) and (d.sigs[3:rows] == 1).all()
    assert np.array_equal(d.sigs[rows], new) and not d.sigs[rows + 1 :].any()
    # in place: the zeroed new half (old_bytes); before, 3x old_bytes
    assert added < 1.5 * old_bytes, f"peak RSS +{added:,} B while doubling a {old_bytes:,} B array"
    # the index still finds a near copy of a document indexed before the doubling
    assert d.check(None, first[1].copy()) == "dedup_near"
