"""Checkpoint tensor files get the mode of the run's other files (the umask's): safetensors >= 0.8 writes them
0600 through a temp file, so another user of a shared run dir could read config.yaml but not the weights."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from steel.train.checkpoint import _save_tensors


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_tensor_files_get_the_umask_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        _save_tensors({"w": torch.ones(3)}, tmp_path / "model.safetensors")
        (tmp_path / "config.yaml").write_text("x: 1\n")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "config.yaml").stat().st_mode)
