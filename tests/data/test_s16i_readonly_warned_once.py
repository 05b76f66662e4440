"""A prepared directory on read-only storage that still holds a finished swap's leftovers (its journal and an empty
`.partial/`: a prepare killed after its new manifest went in, then copied) is read with one warning per process
and directory, not one per read.

Found in session 16: `steel train` read such a directory's manifest twice at start (and again per data check), and
each read warned "holds the new output, but what its swap left ... cannot be removed".

The state is made by hand as `test_s15c3_swap_readonly_complete` makes it by killing a prepare (the complete
output, its journal, an empty stage). A simulated read-only directory (every write into it fails with EROFS: as
root, chmod stops no write) runs everywhere; a real read-only bind mount, through `steel train`, where a private
mount namespace can be made (`unshare -m`, as root).
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

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_fixtures import make_data_dir, tiny_config  # noqa: E402

from steel.data import swap  # noqa: E402
from steel.data.chunks import read_manifest  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")
WARNING = "holds the new output, but what its swap left"


def left_with_its_journal(d: Path, seed: int) -> Path:
    """A complete output in `d` whose swap's journal and (empty) stage are still there."""
    make_data_dir(d, [300, 300], seed=seed)
    journal = {"format": swap.JOURNAL_FORMAT, "version": swap.JOURNAL_VERSION, "stage": ".partial", "remove": [],
               "move": ["chunk-00000.bin", "chunk-00001.bin"], "tokenizer": None, "by": "steel data prepare"}
    (d / swap.JOURNAL).write_text(json.dumps(journal), encoding="utf-8")
    (d / ".partial").mkdir()
    return d


def test_each_read_only_directory_is_warned_about_once_per_process(tmp_path, monkeypatch, caplog):
    dirs = [left_with_its_journal(tmp_path / f"d{i}", i) for i in range(2)]
    monkeypatch.setattr(swap, "_TOLD_LEFT", set(), raising=False)  # (this process may have read others)

    def inside(path) -> bool:
        return isinstance(path, (str, os.PathLike)) and any(Path(path).is_relative_to(d) for d in dirs)

    def read_only(real):
        def call(path, *args, **kwargs):
            if inside(path):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real(path, *args, **kwargs)
        return call

    real_open = open

    def builtin_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and inside(file):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    for name in ("unlink", "rmdir", "remove"):
        monkeypatch.setattr(os, name, read_only(getattr(os, name)))
    monkeypatch.setattr("builtins.open", builtin_open)
    before = [sorted(p.name for p in d.iterdir()) for d in dirs]
    with caplog.at_level(logging.WARNING, logger="steel"):
        for _ in range(3):
            for d in dirs:
                assert read_manifest(d)["total_tokens"] == 600
    told = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    assert [m.split(":")[0] for m in told] == [str(d) for d in dirs], told  # once each, in the order first read
    assert all("Read-only file system" in m for m in told)
    assert [sorted(p.name for p in d.iterdir()) for d in dirs] == before  # nothing was changed


def test_the_leftovers_go_on_a_writable_read_after_the_warning(tmp_path, monkeypatch, caplog):
    """Told once does not mean given up: a later read where the directory is writable still removes them."""
    d = left_with_its_journal(tmp_path / "d", 0)
    monkeypatch.setattr(swap, "_TOLD_LEFT", {str(d.resolve())}, raising=False)
    with caplog.at_level(logging.WARNING, logger="steel"):
        assert read_manifest(d)["total_tokens"] == 600
    assert not (d / swap.JOURNAL).exists() and not (d / ".partial").exists()


def test_steel_train_on_a_real_read_only_mount_warns_once(tmp_path):
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("no private mount namespace here (unshare -m): the simulated test above covers the reads")
    data = left_with_its_journal(tmp_path / "data", 0)
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    run = subprocess.run(
        ["unshare", "-m", "sh", "-c", 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && '
         '! touch "$1/.probe" 2>/dev/null && shift && exec "$@"', "sh", str(data), sys.executable, "-m", "steel",
         "train", str(cfg)],
        env=dict(os.environ, PYTHONPATH=SRC, STEEL_NO_PROGRESS="1"), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count(WARNING) == 1, run.stderr[-3000:]
    assert (data / swap.JOURNAL).exists()  # (read-only: left as it was)
