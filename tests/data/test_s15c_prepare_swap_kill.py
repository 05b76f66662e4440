"""A `kill -9` (or a power loss) at any point of `steel data prepare`'s final swap leaves OUT readable: the
complete previous output or the complete new one, once the next reader (training, `data inspect`, the next
prepare) has finished a swap a killed run left half done.

The swap used to delete the previous manifest and chunks, rename the staged ones in, then write the new manifest:
a SIGKILL in between left OUT with neither output (no manifest; training and inspect refused the directory and
only a new prepare, days for terabytes, brought it back), although the README promised that the previous output
stays until the new one is complete.

Each case runs the rerun in a child process that SIGKILLs itself before its k-th file-system call (rename,
unlink, mkdir, rmdir, fsync) from the start of the swap (prepare's block holding Ctrl-C) on, for k = 0, 1, ...
until a run ends unkilled: every state the swap passes through, deterministically. After each kill the test
reads OUT as `steel data inspect` and the training loader do, compares every file of OUT (MD5) with the previous
output and with the new one made unkilled, and runs the prepare again, which must give the new output and no
leftovers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from swap_kill import TRACER, fail_second_move, killed_states, run_traced  # (same dir)

from steel.cli import main
from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.loader import PretrainLoader
from steel.data.prepare import prepare
from steel.tokenizer.engine import fingerprint

# What a tokenizer/ of the previous output holds: its fingerprint is the previous output's tokenizer's, and the
# new output (another tokenizer) must not keep it.
OLD_TOKENIZER = {"model": {"type": "WordLevel", "vocab": {"x": 0}}, "added_tokens": []}
OLD_FP, NEW_FP = fingerprint(OLD_TOKENIZER), "e" * 64

CHILD = TRACER + r'''
import json, sys

from steel.config import from_dict
from steel.data.config import DataConfig
import steel.data.prepare as P
import steel.runlog

steel.runlog.environment_report = lambda: {}  # it imports torch (seconds per child); not what is tested

out, cfg_json, fp, kill_at, trace = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]


class Bytes:  # one id per UTF-8 byte, EOS 0
    eos_id, vocab_size, special_ids, fingerprint = 0, 257, {}, fp

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


trace_from_swap(P)
trace_ops(SWAP_OPS)
try:
    P.prepare(from_dict(DataConfig, json.loads(cfg_json)), out, encoder=Bytes(), quiet=True)
finally:
    write_trace(trace)
'''


class NewBytes:  # the child's encoder of the new output, for a rerun in this process
    eos_id, vocab_size, special_ids, fingerprint = 0, 257, {}, NEW_FP

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


def config(root: Path, chunk_tokens: int, sources: list[str], exact: bool) -> dict:
    return {"root": str(root), "tokenizer": "unused (encoder passed in)", "chunk_tokens": chunk_tokens,
            "workers": 0, "dedup": {"exact": exact, "near": False},
            "sources": [{"name": s, "path": [f"{s}.jsonl"]} for s in sources]}


def write_docs(root: Path) -> None:
    for s, n in (("a", 24), ("b", 9), ("c", 14)):
        docs = [f"{s}{i}: 第{i}篇文档（{s}），讲的是第{i * 7 % 11}件事情。Document {i} of {s}." for i in range(n)]
        (root / f"{s}.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs),
                                          encoding="utf-8")


def previous_and_new(tmp: Path, encoder, log: logging.Logger) -> tuple[Path, Path, DataConfig]:
    """The documents in tmp/in, the previous output in tmp/out (sources a, b; 600-token chunks; exact dedup) and
    the new one made unkilled in tmp/ref (a, c; 450; no dedup) -> (out, ref, the new one's config)."""
    root = tmp / "in"
    root.mkdir()
    write_docs(root)
    out, ref = tmp / "out", tmp / "ref"
    prepare(from_dict(DataConfig, config(root, 600, ["a", "b"], True)), out, encoder=encoder, log=log, quiet=True)
    new_cfg = from_dict(DataConfig, config(root, 450, ["a", "c"], False))
    prepare(new_cfg, ref, encoder=encoder, log=log, quiet=True)
    return out, ref, new_cfg


def run_child(tmp: Path, out: Path, cfg: dict, fp: str, kill_at: int) -> tuple[int, list[str]]:
    return run_traced(tmp, CHILD, [str(out), json.dumps(cfg), fp, str(kill_at)])


def output_files(d: Path) -> dict[str, str]:
    """Every file of the output in `d` -> its MD5; the manifest's as the MD5 of its JSON without the timing and
    environment, which differ between two runs of the same prepare. Hidden entries at the top are the
    machinery's (the lock file, scratch dirs), not the output's."""
    got = {}
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d)
        if rel.parts[0].startswith(".") or not p.is_file():
            continue
        if rel.as_posix() == "manifest.json":
            m = json.loads(p.read_text(encoding="utf-8"))
            m.pop("stats"), m.pop("environment")
            got[rel.as_posix()] = hashlib.md5(json.dumps(m, sort_keys=True).encode()).hexdigest()
        else:
            got[rel.as_posix()] = hashlib.md5(p.read_bytes()).hexdigest()
    return got


def samples(d: Path) -> np.ndarray:
    ld = PretrainLoader([d], seq_len=16, micro_batch=4, seed=5)
    return ld.read_samples(np.arange(ld.total))


def test_a_kill_at_any_point_of_the_swap_leaves_the_previous_or_the_new_output(tmp_path, capsys, caplog):
    root = tmp_path / "in"
    root.mkdir()
    write_docs(root)
    old_cfg, new_cfg = config(root, 600, ["a", "b"], True), config(root, 450, ["a", "c"], False)
    # The previous output, with its tokenizer/; chunk names the rerun writes too (a-00000.bin...), names it does
    # not (b-*), a sidecar it does not write (documents.npy).
    old = tmp_path / "old"
    assert run_child(tmp_path, old, old_cfg, OLD_FP, -1)[0] == 0
    (old / "tokenizer").mkdir()
    (old / "tokenizer" / "tokenizer.json").write_text(json.dumps(OLD_TOKENIZER), encoding="utf-8")
    new = tmp_path / "new"
    shutil.copytree(old, new)
    code, trace = run_child(tmp_path, new, new_cfg, NEW_FP, -1)
    assert code == 0
    old_files, new_files = output_files(old), output_files(new)
    assert {"a-00000.bin", "b-00000.bin", "documents.npy", "tokenizer/tokenizer.json"} <= set(old_files)
    assert "a-00000.bin" in new_files and "documents.npy" not in new_files and "tokenizer/tokenizer.json" \
        not in new_files and old_files["a-00000.bin"] != new_files["a-00000.bin"]
    old_samples, new_samples = samples(old), samples(new)
    assert old_samples.shape != new_samples.shape

    def kill(out: Path, k: int) -> int:  # the prepare on a copy of the previous output, killed before op k
        return run_child(tmp_path, out, new_cfg, NEW_FP, k)[0]

    seen = {"old": 0, "new": 0}
    for out, rerun, where, raw in killed_states(tmp_path, old, trace, kill):
        # what `steel data inspect` and the training loader read (each finishes a swap left half done)
        capsys.readouterr()
        with caplog.at_level(logging.INFO, logger="steel"):
            rc = main(["data", "inspect", str(out)])
        printed = capsys.readouterr().out
        assert rc in (0, None), f"{where}: inspect failed; OUT held {raw}"
        got = output_files(out)
        assert got in (old_files, new_files), f"{where}: OUT holds neither output: {sorted(got)}; raw {raw}"
        which = "old" if got == old_files else "new"
        seen[which] += 1
        ref = old if which == "old" else new
        tokens = json.loads((ref / "manifest.json").read_text(encoding="utf-8"))["total_tokens"]
        assert f"{tokens:,} tokens" in printed, f"{where}: {printed[:300]}"
        assert np.array_equal(samples(out), old_samples if which == "old" else new_samples), where
        # the next prepare, on what the kill left: the new output, nothing left behind
        prepare(from_dict(DataConfig, new_cfg), rerun, encoder=NewBytes(), quiet=True)  # (here: a child less a step)
        assert output_files(rerun) == new_files, where
        assert sorted(p.name for p in rerun.iterdir() if p.name.startswith(".")) == [".steel.lock"], where
    assert seen["old"] and seen["new"], seen


def test_an_error_in_the_swap_leaves_the_staged_output_for_the_next_reader(tmp_path, monkeypatch, caplog):
    """An OSError while the staged files move in (EIO, a full disk's metadata) used to end the run with the
    previous output half deleted and OUT/.partial/ removed by the error path: neither output was left."""
    from steel.config import from_dict
    from steel.data.chunks import read_manifest
    from steel.data.config import DataConfig
    from steel.data.prepare import STAGING, prepare

    class Bytes:
        eos_id, vocab_size, special_ids, fingerprint = 0, 257, {}, NEW_FP

        def encode_batch(self, texts):
            return [[b + 1 for b in t.encode()] for t in texts]

    root = tmp_path / "in"
    root.mkdir()
    write_docs(root)
    log = logging.getLogger("test.steel.s15c")
    out, new = tmp_path / "out", tmp_path / "new"
    prepare(from_dict(DataConfig, config(root, 600, ["a", "b"], True)), out, encoder=Bytes(), log=log, quiet=True)
    shutil.copytree(out, new)
    new_cfg = from_dict(DataConfig, config(root, 450, ["a", "c"], False))
    prepare(new_cfg, new, encoder=Bytes(), log=log, quiet=True)
    with monkeypatch.context() as m:
        fail_second_move(m, out)  # the second staged file to move in fails (EIO)
        try:
            prepare(new_cfg, out, encoder=Bytes(), log=log, quiet=True)
        except OSError as e:
            assert e.errno == 5
        else:
            raise AssertionError("the failing rename did not fail the run")
    assert (out / STAGING).is_dir() and not (out / "manifest.json").exists()
    with caplog.at_level(logging.WARNING, logger="steel"):
        m = read_manifest(out)
    assert "ended (killed, or an error) while moving its finished output in: finished moving it" in caplog.text
    assert [c["md5"] for c in m["chunks"]] == [c["md5"] for c in read_manifest(new)["chunks"]]
    assert output_files(out) == output_files(new)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".steel.lock"]


LOCK_HOLDER = r'''
import fcntl, sys, time
from pathlib import Path

d = Path(sys.argv[1])
with open(d / ".steel.lock", "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    (d / "locked").write_text("")
    time.sleep(1.5)
    (d / "released").write_text("")
'''


def test_a_reader_on_any_rank_waits_for_the_lock_before_finishing_a_swap(tmp_path, monkeypatch):
    """Two processes finishing one swap at once would delete each other's moved files: every reader takes OUT's
    lock (torchrun ranks other than 0 too, which `steel.dirlock.acquire` lets through) and waits for its holder."""
    from steel.data.chunks import read_manifest
    from steel.data.prepare import STAGING

    # a swap left half done: the previous output's manifest gone, the new one staged, the journal written
    out = tmp_path / "out"
    (out / STAGING).mkdir(parents=True)
    (out / "a-00000.bin").write_bytes(b"previous")
    (out / STAGING / "a-00000.bin").write_bytes(b"new")
    manifest = {"format": "steel-data-manifest", "version": 1, "total_tokens": 0, "chunks": [], "tokenizer": {},
                "sources": {}}
    (out / STAGING / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (out / ".steel-swap.json").write_text(json.dumps(
        {"format": "steel-data-swap", "version": 1, "stage": STAGING, "remove": [], "move": ["a-00000.bin"],
         "tokenizer": None}), encoding="utf-8")
    script = tmp_path / "holder.py"
    script.write_text(LOCK_HOLDER, encoding="utf-8")
    holder = subprocess.Popen([sys.executable, str(script), str(out)])
    try:
        for _ in range(600):
            if (out / "locked").exists() or holder.poll() is not None:
                break
            time.sleep(0.05)
        assert (out / "locked").exists(), "the lock holder did not start"
        monkeypatch.setenv("RANK", "1")
        assert read_manifest(out)["chunks"] == []
        assert (out / "released").exists()  # finished only once the holder let go
        assert (out / "a-00000.bin").read_bytes() == b"new" and not (out / STAGING).exists()
        assert not (out / ".steel-swap.json").exists()
    finally:
        holder.wait(30)
