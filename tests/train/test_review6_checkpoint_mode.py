"""Checkpoint tensor files get the mode of the run's other files (the umask's): safetensors >= 0.8 writes them
0600 through a temp file, so another user of a shared run dir could read config.yaml but not the weights. A
directory's default ACL decides that mode too: taking the umask's alone made the weights readable by everyone
in a run dir whose default ACL gives others nothing."""

from __future__ import annotations

import os
import stat
import struct

import pytest
import torch
from safetensors.torch import load_file

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


def _default_acl(user: int, group: int, other: int) -> bytes:
    """A `system.posix_acl_default` value (version 2; ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER entries)."""
    entries = ((0x01, user), (0x04, group), (0x20, other))
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, 0xFFFFFFFF) for tag, perm in entries)


def test_tensor_files_follow_a_default_acl(tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    try:
        os.setxattr(d, "system.posix_acl_default", _default_acl(7, 7, 0))
    except OSError as e:
        pytest.skip(f"no POSIX ACLs on this file system ({e})")
    old = os.umask(0o022)
    try:
        _save_tensors({"w": torch.ones(3)}, d / "model.safetensors")
        (d / "config.yaml").write_text("x: 1\n", encoding="utf-8")
    finally:
        os.umask(old)
    want = stat.S_IMODE((d / "config.yaml").stat().st_mode)
    assert want == 0o660  # the ACL's, not the umask's 0644
    assert stat.S_IMODE((d / "model.safetensors").stat().st_mode) == want
    assert torch.equal(load_file(d / "model.safetensors")["w"], torch.ones(3))
