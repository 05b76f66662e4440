"""A reader that finds a swap's journal and OUT's lock held waits for the holder as long as its swap moves files:
one rename per chunk is minutes for 100,000 chunks on slow network storage, and the reader gave up after
LOCK_WAIT_S (60 s) from its start however fast the swap went on. A holder whose swap moves nothing is still given
up on after LOCK_WAIT_S (here shortened to 1 s; the holder renames a file every 0.2 s)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import steel.data.swap as swap
from steel.data.chunks import MANIFEST, ChunkFormatError, read_manifest

STAGE = ".partial"
HOLDER = r'''
import fcntl, os, shutil, sys, time
from pathlib import Path

d, moves, pause = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
with open(d / ".steel.lock", "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.write("test holder\n")
    f.flush()
    (d / "locked").write_text("")
    names = sorted(p.name for p in (d / ".partial").iterdir() if p.name != "manifest.json")
    for name in names[:moves]:  # a swap moving its chunks in, slowly
        time.sleep(pause)
        os.replace(d / ".partial" / name, d / name)
    if moves < 0:  # stuck
        time.sleep(pause)
    else:
        for name in names[moves:]:
            os.replace(d / ".partial" / name, d / name)
        os.replace(d / ".partial" / "manifest.json", d / "manifest.json")
        shutil.rmtree(d / ".partial")
        (d / ".steel-swap.json").unlink()
    (d / "released").write_text("")
'''


def half_done_swap(out: Path, n: int) -> None:
    """OUT as a swap of `n` chunks leaves it after its journal: the previous manifest gone, the new one staged."""
    (out / STAGE).mkdir(parents=True)
    names = [f"a-{i:05d}.bin" for i in range(n)]
    for name in names:
        (out / STAGE / name).write_bytes(b"new")
    manifest = {"format": "steel-data-manifest", "version": 1, "total_tokens": n, "chunks": [], "tokenizer": {},
                "sources": {}}
    (out / STAGE / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    (out / swap.JOURNAL).write_text(json.dumps(
        {"format": "steel-data-swap", "version": 1, "stage": STAGE, "remove": [], "move": names, "tokenizer": None,
         "by": "steel data prepare"}), encoding="utf-8")


def hold(tmp: Path, out: Path, moves: int, pause: float) -> subprocess.Popen:
    script = tmp / "holder.py"
    script.write_text(HOLDER, encoding="utf-8")
    holder = subprocess.Popen([sys.executable, str(script), str(out), str(moves), str(pause)])
    for _ in range(600):
        if (out / "locked").exists() or holder.poll() is not None:
            break
        time.sleep(0.05)
    assert (out / "locked").exists(), "the lock holder did not start"
    return holder


@pytest.fixture()
def short_wait(monkeypatch):
    monkeypatch.setattr(swap, "LOCK_WAIT_S", 1.0)
    monkeypatch.setattr(swap, "PROGRESS_LOOK_S", 0.1, raising=False)  # (raising: to run on older code)


def test_a_reader_waits_while_the_swap_moves_files(tmp_path, short_wait):
    out = tmp_path / "out"
    half_done_swap(out, 16)
    holder = hold(tmp_path, out, 12, 0.2)  # 2.4 s of moves, 0.2 s apart
    try:
        t0 = time.monotonic()
        assert read_manifest(out)["total_tokens"] == 16  # the holder's swap ended: read, not finished here
        assert time.monotonic() - t0 > 1.5 and (out / "released").exists()
        assert sorted(p.name for p in out.glob("*.bin")) == [f"a-{i:05d}.bin" for i in range(16)]
    finally:
        holder.wait(30)


def test_a_reader_gives_up_on_a_holder_whose_swap_does_not_move(tmp_path, short_wait):
    out = tmp_path / "out"
    half_done_swap(out, 4)
    holder = hold(tmp_path, out, -1, 20)
    try:
        t0 = time.monotonic()
        with pytest.raises(ChunkFormatError, match=r"\(test holder\) that has moved no file in 1 s"):
            read_manifest(out)
        assert time.monotonic() - t0 < 10 and holder.poll() is None
        assert (out / swap.JOURNAL).exists() and (out / STAGE / MANIFEST).exists()  # left to the holder
    finally:
        holder.kill()
        holder.wait(30)
