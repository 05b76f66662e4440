"""A token id past the vocabulary in the middle of a chunk (a bit flip the head/tail MD5 does not cover) is a
DataError naming the chunk file and offset, raised on the host when the batch is read.

It reached the embedding as an index error: on CUDA a device-side assert that names no file and leaves the
CUDA context unusable, so the run died without saying which chunk to restore.
"""

from __future__ import annotations

import numpy as np
import pytest
from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel
from steel.data.chunks import HEADER_SIZE, MD5_SPAN, head_tail_md5
from steel.data.loader import DataError, PretrainLoader

TOKENS = 1_500_000  # uint16 ids: 3 MB, more than the 2 x 1 MiB the head/tail MD5 hashes


def corrupt(path, first: int, count: int = 1, value: int = 0xFFFF) -> None:
    """Overwrite `count` ids from token offset `first` with `value` (uint16 chunks), in place."""
    with open(path, "r+b") as f:
        f.seek(HEADER_SIZE + 2 * first)
        f.write(np.full(count, value, dtype=np.uint16).tobytes())


def test_flipped_id_in_the_middle_of_a_chunk_names_the_file(tmp_path):
    data = make_data_dir(tmp_path / "data", [TOKENS], seed=3)
    chunk = data / "chunk-00000.bin"
    md5 = head_tail_md5(chunk)
    assert MD5_SPAN < HEADER_SIZE + 2 * 750_003 < chunk.stat().st_size - MD5_SPAN  # outside the hashed ends
    corrupt(chunk, 750_003)
    assert head_tail_md5(chunk) == md5  # the start-up check cannot see it
    ld = PretrainLoader([data], 16, 4, seed=0)
    ld.read_samples(np.arange(0, 46_875))  # the windows before it read as before
    with pytest.raises(DataError) as e:
        ld.read_samples(np.array([5, 46_875, 7]))  # window 62,500: tokens 750,000 .. 750,016
    assert str(e.value) == (
        f"{chunk}: token id 65535 at token offset 750003 (in the sample at offset 750000) is >= the chunk's "
        "vocabulary size 256: the chunk is corrupt (its head/tail MD5 does not cover the middle); restore it or "
        "prepare the data again")


def test_steel_train_stops_naming_the_chunk(tmp_path, capsys):
    data = make_data_dir(tmp_path / "data", [TOKENS], seed=3)
    chunk = data / "chunk-00000.bin"
    corrupt(chunk, 600_000, 300_000, value=300)  # a fifth of the chunk, between the hashed ends: hit at once
    cfg = tiny_config(tmp_path, [data], max_steps=5)
    assert steel(["train", str(cfg)]) != 0
    err = capsys.readouterr().err
    assert f"{chunk}: token id 300 at token offset" in err and "vocabulary size 256" in err, err[-2000:]
