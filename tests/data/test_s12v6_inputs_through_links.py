"""An input file named by an absolute path through a link is judged by the file it reads.

A file outside the root given by absolute path was recorded as spelt (`/mnt/link/en/b.jsonl`), while a prepare
of the same file under its own root records it relative to the resolved root: two data dirs of one file were let
in together (every document trained twice per epoch). The prepare now records its resolved path in
`inputs.elsewhere`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from steel.data.loader import DataError, PretrainLoader

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from test_s12r1_duplicate_inputs import T, prep, write_inputs  # noqa: E402


def test_an_absolute_input_path_through_a_link_is_the_linked_file(tmp_path):
    write_inputs(tmp_path / "raw" / "en", ["a.jsonl", "b.jsonl"])
    write_inputs(tmp_path / "raw" / "zh", ["c.jsonl"], seed=3)
    os.symlink(tmp_path / "raw", tmp_path / "link")
    en = prep(tmp_path / "raw", tmp_path / "EN", ["en/*.jsonl"])
    # the zh prepare also reads en/b.jsonl, named through the link and outside its root
    other = prep(tmp_path / "raw" / "zh", tmp_path / "ZH", ["c.jsonl", str(tmp_path / "link" / "en" / "b.jsonl")],
                 chunk_tokens=500)
    m = json.loads((other / "manifest.json").read_text())
    assert m["inputs"]["elsewhere"] == {str(tmp_path / "link" / "en" / "b.jsonl"): str(tmp_path / "raw" / "en" / "b.jsonl")}
    with pytest.raises(DataError) as e:
        PretrainLoader([en, other], seq_len=T, micro_batch=2, seed=3)
    assert str(tmp_path / "raw" / "en" / "b.jsonl") in str(e.value) and "a.jsonl" not in str(e.value)
    # the zh file alone is other data
    zh = prep(tmp_path / "raw" / "zh", tmp_path / "ZH2", ["c.jsonl"], chunk_tokens=700)
    assert PretrainLoader([en, zh], seq_len=T, micro_batch=2, seed=3).total > 0
