"""A chunk file replaced after the loader checked it (e.g. `steel data prepare` rerun into a data dir a run
is reading: prepare renames new chunk files over the old names) must not be read as if it were the chunk
the run registered.

The loader maps a chunk lazily, by path, on the first batch that needs it, so a replacement between the
start-up check and that first read used to be read silently (a same-size replacement: other tokens under
the registered sample ids; the resume then refuses the run, which trained on them meanwhile) or crash
with numpy's "could not broadcast input array from shape (0,) into shape (17,)" (a shorter one).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from train_fixtures import FINGERPRINT, VOCAB, make_data_dir

from steel.data.chunks import read_chunk, write_chunk
from steel.data.loader import DataError, PretrainLoader

T = 16
NAMES = ["chunk-00000.bin", "chunk-00001.bin"]


def replace_file(dst, write) -> None:
    """Write the new file beside `dst` and rename it over `dst`, as prepare moves its staged chunks in."""
    tmp = dst.with_name(dst.name + ".new")
    write(tmp)
    tmp.replace(dst)


def drain(ld: PretrainLoader, batches: int = 60) -> list[np.ndarray]:
    out = []
    for _ in range(batches):
        out.append(ld.next_batch()["input_ids"].numpy().copy())
    return out


def test_a_shorter_chunk_put_in_place_is_a_data_error_naming_it(tmp_path):
    d = make_data_dir(tmp_path / "d", [900, 700], seed=1)
    other = make_data_dir(tmp_path / "other", [300, 200], seed=5)
    ld = PretrainLoader([d], seq_len=T, micro_batch=4, seed=0)
    for name in NAMES:
        replace_file(d / name, lambda p, n=name: shutil.copyfile(other / n, p))
    with pytest.raises(DataError, match=r"chunk-0000[01]\.bin: chunk changed since"):
        drain(ld)


def test_same_size_chunk_with_other_tokens_is_a_data_error(tmp_path):
    d = make_data_dir(tmp_path / "d", [900, 700], seed=1)
    ld = PretrainLoader([d], seq_len=T, micro_batch=4, seed=0)
    for name in NAMES:
        _, toks = read_chunk(d / name)
        changed = (np.asarray(toks, dtype=np.int64) + 1) % VOCAB  # same length, other tokens
        replace_file(d / name, lambda p, t=changed: write_chunk(p, t, VOCAB, FINGERPRINT))
    with pytest.raises(DataError, match=r"chunk-0000[01]\.bin: chunk changed since.*head/tail MD5"):
        drain(ld)


def test_an_identical_rewrite_reads_on_unchanged(tmp_path):
    """A deterministic prepare rerun rewrites byte-identical chunks (new files, same content): no error."""
    d = make_data_dir(tmp_path / "d", [900, 700], seed=1)
    ref = make_data_dir(tmp_path / "ref", [900, 700], seed=1)
    ld, want = PretrainLoader([d], seq_len=T, micro_batch=4, seed=0), PretrainLoader([ref], seq_len=T, micro_batch=4, seed=0)
    for name in NAMES:
        replace_file(d / name, lambda p, n=name: shutil.copyfile(ref / n, p))
    got, expected = drain(ld), drain(want)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
