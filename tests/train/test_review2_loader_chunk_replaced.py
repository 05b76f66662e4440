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


def test_a_chunk_replaced_just_before_it_is_mapped_is_re_hashed(tmp_path, monkeypatch):
    """The identity that decides on a re-hash is the mapped file's: a replacement between a stat of the path
    and its open was mapped under the old file's identity, and read unchecked."""
    import steel.data.loader as loader_mod

    d = make_data_dir(tmp_path / "d", [900, 700], seed=1)
    ld = PretrainLoader([d], seq_len=T, micro_batch=4, seed=0)
    real_read_chunk = loader_mod.read_chunk

    def replaced_then_read(path):
        _, toks = real_read_chunk(path)
        changed = (np.asarray(toks, dtype=np.int64) + 1) % VOCAB  # same length, other tokens
        replace_file(path, lambda p: write_chunk(p, changed, VOCAB, FINGERPRINT))
        return real_read_chunk(path)

    monkeypatch.setattr(loader_mod, "read_chunk", replaced_then_read)
    with pytest.raises(DataError, match=r"chunk-0000[01]\.bin: chunk changed since.*head/tail MD5"):
        drain(ld)


def test_a_chunk_removed_when_it_is_re_hashed_is_a_data_error(tmp_path, monkeypatch):
    import steel.data.loader as loader_mod

    d = make_data_dir(tmp_path / "d", [900, 700], seed=1)
    ld = PretrainLoader([d], seq_len=T, micro_batch=4, seed=0)
    for name in NAMES:  # byte-identical rewrites: new identities, so the first read re-hashes them
        replace_file(d / name, lambda p, n=name: shutil.copyfile(d / n, p))

    def gone(path):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(loader_mod, "head_tail_md5", gone)
    with pytest.raises(DataError, match=r"chunk-0000[01]\.bin: cannot read chunk \(No such file"):
        drain(ld)
