"""The near-dup index grows its signature array in place.

Scale audit (session 16): `Deduper` doubled its (capacity, num_perm) uint32 signature array with
`np.concatenate([sigs, np.zeros_like(sigs)])`, which holds the old array, the zeros and the doubled copy at once:
3x the old array's bytes resident beside it at every doubling (measured: +192 MiB over a 64 MiB array; 48 GiB
beside 16 GiB at 32M documents of 128 permutations, on top of the band tables), the peak that decides whether a
prepare shard fits its machine. Now the array is resized in place (realloc: a remap for a large array), +1x for its
zeroed new half. Checked by the process's peak RSS over the one `check` that doubles the array (VmHWM reset
through /proc/self/clear_refs), and by the array's content after it.

The RSS is measured in a fresh interpreter (review VH): in pytest's own process, after tests that freed large
buffers (the SFT tests before it: a tokenizer, tensors), glibc served the 64 MiB array from free space of its heap,
which realloc cannot remap: it copied, +2x, and the check failed 5 times in 6 though the code was right. A prepare's
array is served that way only while it is smaller than the heap's free space; once realloc has moved it into a
mapping of its own, every later doubling is a remap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import steel
from steel.data.config import DedupConfig
from steel.data.dedup import Deduper

ROWS = 1 << 17  # a full index of 2^17 documents: 64 MiB of signatures at 128 permutations

CHILD = """
import json, sys
import numpy as np
from steel.data.config import DedupConfig
from steel.data.dedup import Deduper

def kib(key):
    with open("/proc/self/status") as f:
        return int(next(ln for ln in f if ln.startswith(key + ":")).split()[1])

rows = int(sys.argv[1])
d = Deduper(DedupConfig(exact=False, near=True))
perms = d.sigs.shape[1]
d.sigs, d.count = np.ones((rows, perms), dtype=np.uint32), rows  # resident, as a filled index is
new = np.random.default_rng(0).integers(0, 2**32, perms, dtype=np.uint32)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM := VmRSS
base = kib("VmRSS")
assert d.check(None, new) is None
print(json.dumps({"added": (kib("VmHWM") - base) * 1024, "old_bytes": rows * perms * 4,
                  "shape": list(d.sigs.shape), "count": d.count}))
"""


def test_signature_array_doubles_without_a_copy_beside_it():
    src = str(Path(steel.__file__).resolve().parents[1])  # the steel under test (a worktree's too)
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROWS)], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=src))
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout)
    assert r["shape"] == [2 * ROWS, r["old_bytes"] // ROWS // 4] and r["count"] == ROWS + 1
    # in place: the zeroed new half (old_bytes); before, 3x old_bytes
    assert r["added"] < 1.5 * r["old_bytes"], f"peak RSS +{r['added']:,} B while doubling a {r['old_bytes']:,} B array"


def test_a_doubled_index_keeps_its_signatures_and_finds_near_copies():
    d = Deduper(DedupConfig(exact=False, near=True))
    perms = d.sigs.shape[1]
    rng = np.random.default_rng(0)
    first = rng.integers(0, 2**32, (3, perms), dtype=np.uint32)
    for s in first:
        assert d.check(None, s) is None
    rows = 1 << 12
    sigs = np.ones((rows, perms), dtype=np.uint32)
    sigs[:3] = first
    d.sigs, d.count = sigs, rows
    del sigs
    new = rng.integers(0, 2**32, perms, dtype=np.uint32)
    assert d.check(None, new) is None
    assert d.sigs.shape == (2 * rows, perms) and d.sigs.dtype == np.uint32 and d.count == rows + 1
    assert np.array_equal(d.sigs[:3], first) and (d.sigs[3:rows] == 1).all()
    assert np.array_equal(d.sigs[rows], new) and not d.sigs[rows + 1 :].any()
    # the index still finds a near copy of a document indexed before the doubling
    assert d.check(None, first[1].copy()) == "dedup_near"
