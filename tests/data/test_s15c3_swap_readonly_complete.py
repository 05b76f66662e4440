"""A prepare killed after its new manifest went in, before its journal was removed, left a complete output: a reader
of that directory made read-only (copied to read-only storage) reads it, warning that the swap's leftovers (the
journal, the stage) cannot be removed.

Found in review (V1): the reader tried to finish the swap, could not unlink the journal, and refused the directory
("make the directory writable ..."): training refused data that was all there.

Each state comes from a child prepare that SIGKILLs itself before one of the swap's file-system calls after the new
manifest's rename (`test_s15c_prepare_swap_kill`'s child); the read-only directory is simulated: every call that
would change OUT fails with EROFS (as root, chmod stops no write). Where a private mount namespace can be made
(`unshare -m`, as root), a second test reads the same states through a real read-only bind mount.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from swap_kill import SRC  # (same dir)
from test_s15c_prepare_swap_kill import (  # (same dir)
    NEW_FP,
    OLD_FP,
    OLD_TOKENIZER,
    config,
    output_files,
    run_child,
    samples,
    write_docs,
)

from steel.data.chunks import read_manifest
from steel.data.swap import JOURNAL


def killed_after_the_manifest(tmp: Path) -> tuple[Path, list[Path]]:
    """-> (the new output made unkilled, an OUT per kill point after the new manifest went in with a journal left)."""
    root = tmp / "in"
    root.mkdir()
    write_docs(root)
    old = tmp / "old"
    assert run_child(tmp, old, config(root, 600, ["a", "b"], True), OLD_FP, -1)[0] == 0
    (old / "tokenizer").mkdir()  # of another tokenizer: set aside in the stage, which goes after the manifest
    (old / "tokenizer" / "tokenizer.json").write_text(json.dumps(OLD_TOKENIZER), encoding="utf-8")
    new_cfg, new = config(root, 450, ["a", "c"], False), tmp / "new"
    shutil.copytree(old, new)
    code, trace = run_child(tmp, new, new_cfg, NEW_FP, -1)
    assert code == 0
    last = max(k for k, op in enumerate(trace) if op.startswith("replace ") and op.endswith("/manifest.json']"))
    outs = []
    for k in range(last + 1, len(trace)):
        out = tmp / f"out{k}"
        shutil.copytree(old, out)
        assert run_child(tmp, out, new_cfg, NEW_FP, k)[0] == -9, trace[k]
        if (out / JOURNAL).exists():
            outs.append(out)
    assert len(outs) >= 2, trace[last:]  # in the stage's removal, and before the journal's
    return new, outs


def test_a_complete_output_left_with_its_journal_is_read_from_read_only_storage(tmp_path, monkeypatch, caplog):
    new, outs = killed_after_the_manifest(tmp_path)
    new_samples = samples(new)

    def inside(path) -> bool:
        return isinstance(path, (str, os.PathLike)) and any(Path(path).is_relative_to(o) for o in outs)

    def read_only(real, nargs):
        def call(*args, **kwargs):
            if kwargs.get("dir_fd") is not None or any(inside(a) for a in args[:nargs]):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(args[0]))
            return real(*args, **kwargs)
        return call

    real_os_open, real_open = os.open, open

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC) and inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_os_open(path, flags, *args, **kwargs)

    def builtin_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and inside(file):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    for name, nargs in (("unlink", 1), ("remove", 1), ("rmdir", 1), ("mkdir", 1), ("rename", 2), ("replace", 2)):
        monkeypatch.setattr(os, name, read_only(getattr(os, name), nargs))
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr("builtins.open", builtin_open)
    for out in outs:
        before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="steel"):
            m = read_manifest(out)
        assert "holds the new output, but what its swap left" in caplog.text, caplog.text
        assert "Read-only file system" in caplog.text
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before  # nothing was changed
        assert m["total_tokens"] == read_manifest(new)["total_tokens"]
        assert output_files(out) == output_files(new)
        assert np.array_equal(samples(out), new_samples)  # what training reads


READER = r'''
import sys
from steel.data.chunks import read_manifest
print(read_manifest(sys.argv[1])["total_tokens"])
'''


def test_a_real_read_only_mount(tmp_path):
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("no private mount namespace here (unshare -m): the simulated test above covers it")
    new, outs = killed_after_the_manifest(tmp_path)
    script = tmp_path / "reader.py"
    script.write_text(READER, encoding="utf-8")
    tokens = read_manifest(new)["total_tokens"]
    for out in outs:
        before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
        run = subprocess.run(
            ["unshare", "-m", "sh", "-c", 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && '
             '! touch "$1/.probe" 2>/dev/null && exec "$2" "$3" "$1"', "sh", str(out), sys.executable, str(script)],
            env=dict(os.environ, PYTHONPATH=SRC), capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.split() == [str(tokens)]
        assert "holds the new output, but what its swap left" in run.stderr and "Read-only file system" in run.stderr
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
