"""A `kill -9` (or a power loss) at any point of `steel data merge --overwrite` leaves OUT readable: the complete
previous output or the complete new one, once the next reader (training, `data inspect`, the next merge) has
finished a swap a killed merge left half done.

merge used to delete OUT's previous manifest, chunks and sidecars first, then link, rewrite and save the new ones
into OUT and write the manifest last: a SIGKILL anywhere in between left OUT with neither output (no manifest, or
none at all until a new merge), and a tokenizer/ of the previous output was replaced in OUT before the new manifest.

Each case runs the merge in a child process that SIGKILLs itself before its k-th file-system call (link, rename,
unlink, mkdir, rmdir, fsync) from the merge's start on, for k = 0, 1, ... until a run ends unkilled: every state
the merge passes through, deterministically. After each kill the test reads OUT as `steel data inspect` and the
training loader do, compares every file of OUT (MD5) with the previous output and with the new one made unkilled,
and runs the merge again, which must give the new output and no leftovers.

The shards share documents across shards (merge rewrites a chunk without them and writes documents.npy) and hold
the tokenizer/ of their tokenizer, which replaces the previous output's (another tokenizer) as a whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
from swap_kill import TRACER, killed_states, run_traced  # (same dir)

from steel.cli import main
from steel.data.loader import PretrainLoader
from steel.data.merge import merge
from steel.tokenizer.engine import fingerprint

# The previous output's tokenizer and the new one's: each output's tokenizer/ holds its own (fingerprints match).
OLD_TOKENIZER = {"model": {"type": "WordLevel", "vocab": {"x": 0}}, "added_tokens": []}
NEW_TOKENIZER = {"model": {"type": "WordLevel", "vocab": {"y": 0, "z": 1}}, "added_tokens": []}

CHILD = TRACER + r'''
import json, sys

from steel.config import from_dict
from steel.data.config import DataConfig
import steel.runlog

steel.runlog.environment_report = lambda: {}  # it imports torch (seconds per child); not what is tested

what, out, args, fp, kill_at, trace = sys.argv[1:7]
out, kill_at = Path(out), int(kill_at)


class Bytes:  # one id per UTF-8 byte, EOS 0
    eos_id, vocab_size, special_ids, fingerprint = 0, 257, {}, fp

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


if what == "prepare":  # a shard: args = [config, index, count]
    from steel.data.prepare import prepare

    cfg, index, count = json.loads(args)
    prepare(from_dict(DataConfig, cfg), out, encoder=Bytes(), shard=(index, count), quiet=True)
    sys.exit(0)

from steel.data.merge import merge

trace_ops(("link", *SWAP_OPS))
try:
    ops.append("start")
    merge(out, json.loads(args), overwrite=True)
finally:
    write_trace(trace)
'''


def output_files(d: Path) -> dict[str, str]:
    """Every file of the output in `d` -> its MD5 (the manifest's: of its JSON). Hidden entries at the top are the
    machinery's (the lock file, the stage, the journal), not the output's."""
    return {p.relative_to(d).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if not p.relative_to(d).parts[0].startswith(".") and p.is_file()}


def samples(d: Path) -> np.ndarray:
    ld = PretrainLoader([d], seq_len=16, micro_batch=4, seed=5)
    return ld.read_samples(np.arange(ld.total))


def config(root: Path, chunk_tokens: int, sources: dict[str, list[str]]) -> dict:
    return {"root": str(root), "tokenizer": "unused (encoder passed in)", "chunk_tokens": chunk_tokens,
            "workers": 0, "dedup": {"exact": True, "near": False},
            "sources": [{"name": s, "path": files} for s, files in sources.items()]}


def write_docs(root: Path) -> None:
    def doc(s: str, i: int) -> str:
        return f"{s}{i}: 第{i}篇文档（{s}），讲的是第{i * 7 % 11}件事情。Document {i} of {s}."

    files = {"a1": [doc("a", i) for i in range(22)],
             "a2": [doc("a", i) for i in range(30, 45)] + [doc("a", i) for i in range(3, 9)],  # 6 in a1 too
             "b": [doc("b", i) for i in range(9)], "c": [doc("c", i) for i in range(14)]}
    for name, docs in files.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs),
                                            encoding="utf-8")


def run_child(tmp: Path, what: str, out: Path, args, fp: str, kill_at: int = -1) -> tuple[int, list[str]]:
    return run_traced(tmp, CHILD, [what, str(out), json.dumps(args), fp, str(kill_at)])


def shards(tmp: Path, name: str, cfg: dict, tokenizer: dict) -> list[str]:
    """Two shards of `cfg`, each with `tokenizer` as its tokenizer/ (as `tokenizer: qwen` builds one into each)."""
    dirs = []
    for i in range(2):
        d = tmp / f"{name}{i}"
        assert run_child(tmp, "prepare", d, [cfg, i, 2], fingerprint(tokenizer))[0] == 0
        (d / "tokenizer").mkdir()
        (d / "tokenizer" / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
        dirs.append(str(d))
    return dirs


def test_a_kill_at_any_point_of_a_merge_leaves_the_previous_or_the_new_output(tmp_path, capsys, caplog):
    root = tmp_path / "in"
    root.mkdir()
    write_docs(root)
    old_fp, new_fp = fingerprint(OLD_TOKENIZER), fingerprint(NEW_TOKENIZER)
    # The previous output: a merge of other shards (sources a, b; smaller chunks) with another tokenizer; the new
    # merge writes chunk names it has (a.shard000of002-00000.bin...) and not (b-*, a's last ones).
    old_dirs = shards(tmp_path, "old", config(root, 300, {"a": ["a1.jsonl", "a2.jsonl"], "b": ["b.jsonl"]}),
                      OLD_TOKENIZER)
    new_dirs = shards(tmp_path, "new", config(root, 450, {"a": ["a1.jsonl", "a2.jsonl"], "c": ["c.jsonl"]}),
                      NEW_TOKENIZER)
    old = tmp_path / "old"
    assert run_child(tmp_path, "merge", old, old_dirs, old_fp)[0] == 0
    new = tmp_path / "new"
    shutil.copytree(old, new)
    code, trace = run_child(tmp_path, "merge", new, new_dirs, new_fp)
    assert code == 0
    old_files, new_files = output_files(old), output_files(new)
    new_manifest = json.loads((new / "manifest.json").read_text(encoding="utf-8"))
    assert new_manifest["dedup"]["cross_shard_exact_removed"] == 6 and new_manifest["dedup"]["rewritten_chunks"]
    assert {"documents.npy", "tokenizer/tokenizer.json"} <= set(old_files) and any(n.startswith("b.") for n in old_files)
    assert "documents.npy" in new_files and not any(n.startswith("b.") for n in new_files)
    shared = sorted(set(old_files) & set(new_files) - {"manifest.json"})
    assert "tokenizer/tokenizer.json" in shared and all(old_files[n] != new_files[n] for n in shared), shared
    old_samples, new_samples = samples(old), samples(new)
    assert old_samples.shape != new_samples.shape

    def kill(out: Path, k: int) -> int:  # the merge on a copy of the previous output, killed before op k
        return run_child(tmp_path, "merge", out, new_dirs, new_fp, k)[0]

    seen = {"old": 0, "new": 0}
    for out, rerun, where, raw in killed_states(tmp_path, old, trace, kill):
        # what `steel data inspect` and the training loader read (each finishes a swap left half done)
        capsys.readouterr()
        with caplog.at_level(logging.INFO, logger="steel"):
            try:
                rc = main(["data", "inspect", str(out)])
            except SystemExit as e:
                rc = e.code
        printed = capsys.readouterr()
        assert rc in (0, None), f"{where}: inspect failed ({printed.err[-500:]}); OUT held {raw}"
        got = output_files(out)
        assert got in (old_files, new_files), f"{where}: OUT holds neither output: {sorted(got)}; raw {raw}"
        which = "old" if got == old_files else "new"
        seen[which] += 1
        ref = old if which == "old" else new
        tokens = json.loads((ref / "manifest.json").read_text(encoding="utf-8"))["total_tokens"]
        assert f"{tokens:,} tokens" in printed.out, f"{where}: {printed.out[:300]}"
        assert np.array_equal(samples(out), old_samples if which == "old" else new_samples), where
        # the next merge, on what the kill left: the new output, nothing left behind
        merge(rerun, new_dirs, overwrite=True)  # (in this process: a child less a step)
        assert output_files(rerun) == new_files, where
        assert sorted(p.name for p in rerun.iterdir() if p.name.startswith(".")) == [".steel.lock"], where
    assert seen["old"] and seen["new"], seen


def test_a_merge_killed_into_a_new_dir_is_run_again_without_overwrite(tmp_path, capsys):
    """A merge into an empty OUT killed while it links the chunks used to leave them in OUT without a manifest: the
    same command again was refused (`output directory is not empty (a.shard000of002-00000.bin, ...)`) until the
    user chose --overwrite. Now a kill before the swap leaves only OUT/.partial/ (which the rerun removes), and a
    kill after its journal the merged output, which the rerun finds complete (and refuses as a data directory)."""
    root = tmp_path / "in"
    root.mkdir()
    write_docs(root)
    new_fp = fingerprint(NEW_TOKENIZER)
    dirs = shards(tmp_path, "s", config(root, 450, {"a": ["a1.jsonl", "a2.jsonl"], "c": ["c.jsonl"]}), NEW_TOKENIZER)
    ref = tmp_path / "ref"
    code, trace = run_child(tmp_path, "merge", ref, dirs, new_fp)
    assert code == 0
    second_link = [k for k, op in enumerate(trace) if op.startswith("link ")][1]  # one chunk linked
    # the first call after the journal's rename (the commit point)
    committed = next((k + 1 for k, op in enumerate(trace) if op.startswith("replace ") and ".steel-swap.json.tmp" in op),
                     None)
    for k, refused in ((second_link, False), (committed, True)):
        assert k is not None, f"no journal written: {trace}"
        out = tmp_path / f"out{k}"
        assert run_child(tmp_path, "merge", out, dirs, new_fp, k)[0] == -9, trace[k]
        capsys.readouterr()
        try:
            rc = main(["data", "merge", str(out), *dirs])
        except SystemExit as e:
            rc = e.code
        err = capsys.readouterr().err
        if refused:
            assert rc == 2 and "output directory is not empty (a data directory: manifest.json" in err, (trace[k], err)
        else:
            assert rc in (0, None), (trace[k], err)
        got = output_files(out)
        got.pop("merge.log", None)
        assert got == output_files(ref), trace[k]
        assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".steel.lock"], trace[k]
