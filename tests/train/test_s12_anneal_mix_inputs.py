"""anneal.mode mix on a dir prepared again from input files the run already reads (other chunk_tokens: other
chunk bytes, the same documents) is refused at startup naming `anneal.dirs`, as a byte-identical copy is;
before, only the switch hours in said so (a warning) and the annealing phase trained those documents twice.
`mode: replace` on the same files stays allowed: that phase draws from the anneal dirs alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_s12r1_duplicate_inputs import T, prep

from steel.config import ConfigError
from steel.data.loader import PretrainLoader
from steel.train.trainer import scan_anneal_dirs


def _cfg(dirs, mode):
    return SimpleNamespace(anneal=SimpleNamespace(dirs=[str(d) for d in dirs], mode=mode, step=4),
                           data=SimpleNamespace(seq_len=T), micro_batch=2)


def test_anneal_mix_of_a_re_prepared_copy_is_refused_at_startup(tmp_path):
    from test_s12r1_duplicate_inputs import write_inputs

    write_inputs(tmp_path / "raw", ["a.jsonl", "b.jsonl", "c.jsonl"])
    a = prep(tmp_path / "raw", tmp_path / "A", ["a.jsonl", "b.jsonl"])
    a2 = prep(tmp_path / "raw", tmp_path / "A2", ["a.jsonl", "b.jsonl"], chunk_tokens=500)
    c = prep(tmp_path / "raw", tmp_path / "C", ["c.jsonl"])
    ld = PretrainLoader([a], seq_len=T, micro_batch=2, seed=3)
    with pytest.raises(ConfigError, match=r"^anneal\.dirs: .*same input files") as e:
        scan_anneal_dirs(_cfg([a2], "mix"), ld)
    assert str(a2) in str(e.value) and str(a) in str(e.value)
    found, reused = scan_anneal_dirs(_cfg([a2], "replace"), ld)  # its phase draws from A2 alone
    assert found and not reused
    found, reused = scan_anneal_dirs(_cfg([c], "mix"), ld)  # new input files: mixed in
    assert found and not reused
