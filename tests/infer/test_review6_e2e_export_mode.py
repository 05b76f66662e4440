"""`steel export` writes the weights with the mode of its other files (umask's), not 0600: safetensors >= 0.8
writes through a temporary file created 0600 (safetensors#782), so an export served or loaded by another user
(a vLLM service account, a Docker image) could read config.json but not model.safetensors."""

from __future__ import annotations

import os
import stat

from steel.cli import main as steel_main


def test_export_files_all_get_the_umask_mode(tmp_path, tiny_llama_dir):
    old = os.umask(0o022)
    try:
        out = tmp_path / "export"
        assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert "model.safetensors" in modes and "config.json" in modes, modes
    assert modes == {name: 0o644 for name in modes}, modes
