"""A checkpoint directory is renamed into place only once everything in it is on disk.

The rename (and the fsync of `checkpoints/`) makes `step-N/` durable; a file inside it whose data was not
fsynced before may be empty after a power loss or a node crash, although the directory looks complete
(`train_state.json` present). `config.yaml` was written without an fsync, and the directory entries of
`step-N.tmp/` and `step-N.tmp/rng/` were never synced.
"""

from __future__ import annotations

import os

import pytest
from train_fixtures import make_data_dir, tiny_config

from steel.train.trainer import main, setup


@pytest.fixture
def data(tmp_path):
    return make_data_dir(tmp_path / "data", [3000, 2000, 2500])


def test_every_file_and_directory_of_a_checkpoint_is_fsynced_before_its_rename(tmp_path, data, monkeypatch):
    trainer = main(setup(str(tiny_config(tmp_path, [data], max_steps=1))))
    synced: set[tuple[int, int]] = set()
    at_rename: dict[str, set[tuple[int, int]]] = {}
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        synced.add((st.st_dev, st.st_ino))
        return real_fsync(fd)

    def replace(src, dst):
        if str(src).endswith(".tmp"):
            at_rename[str(dst)] = set(synced)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    final = trainer.save()
    trainer.metrics.close()
    trainer.release_lock()
    done = at_rename[str(final)]
    entries = [final, *sorted(final.rglob("*"))]
    assert {p.name for p in entries} >= {"config.yaml", "model.safetensors", "train_state.json", "rng"}
    missing = [str(p.relative_to(final.parent)) for p in entries
               if (p.stat().st_dev, p.stat().st_ino) not in done]
    assert missing == []
