"""`prepare.file_heads` (the manifest's `input_heads`): each file's digest of its first 64 KB and their length (all
of a smaller file), None for a file that cannot be read, with memory that does not grow by a Future per file
(Executor.map submitted every file's task at once: ~1.7 KB per input file held to the end, 1.7 GB at a million
files, for ~120 bytes of digests each)."""

from __future__ import annotations

import hashlib
import tracemalloc

from steel.data.prepare import file_heads


def test_heads_are_the_first_64_kb_digests_and_none_for_a_vanished_file(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_bytes(bytes(range(256)) * 1000)  # 256,000 bytes: only the first 65,536 count
    small = tmp_path / "small.jsonl"
    small.write_bytes(b'{"text": "x"}\n')
    gone = tmp_path / "gone.jsonl"  # listed, then removed before its head is read
    files = [(0, big, "big.jsonl"), (0, small, "small.jsonl"), (1, gone, "gone.jsonl")]
    heads = file_heads(files)
    assert heads == {files[0]: (hashlib.blake2b(big.read_bytes()[:65536], digest_size=8).hexdigest(), 65536),
                     files[1]: (hashlib.blake2b(small.read_bytes(), digest_size=8).hexdigest(), 14), files[2]: None}


def test_memory_does_not_hold_a_task_per_file(tmp_path):
    n = 8192
    files = []
    for i in range(n):
        p = tmp_path / f"f{i:05d}.jsonl"
        p.write_bytes(b'{"text": "%d"}\n' % i)
        files.append((0, p, p.name))
    file_heads(files[:10])  # (the pool's first start)
    tracemalloc.start()
    try:
        heads = file_heads(files)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(heads) == n and None not in heads.values()
    # the digests kept are ~120 bytes per file; a pending Future per file made the peak ~1,700 bytes per file
    assert peak / n < 600, f"{peak / n:.0f} bytes per file at the peak"
