"""`tokenizer: qwen` builds Qwen's tokenizer into the prepare's stage, and the output's swap moves it into
OUT/tokenizer/: a rerun interrupted before the swap leaves the previous output whole, its tokenizer/ included.

`load_data_encoder` rebuilt OUT/tokenizer/ at the start of the prepare: a qwen rerun over an output made with
another tokenizer, interrupted (Ctrl-C, an error, a kill) before its swap, left the previous manifest and chunks
beside a Qwen tokenizer/ that is not theirs (`tokenizer_dir_for` refused it as a mismatch: the data had lost its
tokenizer until a new prepare).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
from swap_kill import TRACER, killed_states, run_traced  # (same dir)

import steel.data.prepare as P
from steel.cli import main
from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.tokenize import dir_fingerprint, tokenizer_dir_for
from steel.tokenizer import qwen
from steel.tokenizer.engine import fingerprint

LOG = logging.getLogger("test.steel.s15c2")
OLD_TOKENIZER = {"model": {"type": "WordLevel", "vocab": {"x": 0}}, "added_tokens": []}


class Bytes:  # the previous output's tokenizer: one id per UTF-8 byte, EOS 0
    eos_id, vocab_size, special_ids, fingerprint = 0, 257, {}, fingerprint(OLD_TOKENIZER)

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


def files(d: Path) -> dict[str, str]:
    """Every file under `d` but the machinery's hidden entries at the top (lock, logs of a run) -> its MD5."""
    return {p.relative_to(d).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if not p.relative_to(d).parts[0].startswith(".") and p.is_file()}


def output(d: Path) -> dict[str, str]:
    """`files`, the manifest's MD5 taken without its timing and environment (they differ between two runs)."""
    got = files(d)
    m = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    m.pop("stats"), m.pop("environment")
    return got | {"manifest.json": hashlib.md5(json.dumps(m, sort_keys=True).encode()).hexdigest()}


def input_config(tmp: Path) -> dict:
    """30 documents in tmp/in/a.jsonl, and the config of a prepare of them with another tokenizer than Qwen's."""
    root = tmp / "in"
    root.mkdir()
    docs = [f"第{i}篇文档，讲的是第{i * 7 % 11}件事情。Document {i}." for i in range(30)]
    (root / "a.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs),
                                  encoding="utf-8")
    return {"root": str(root), "tokenizer": "unused (encoder passed in)", "chunk_tokens": 200, "workers": 0,
            "sources": [{"name": "a", "path": ["a.jsonl"]}]}


@pytest.fixture()
def small_ranks(tmp_path, monkeypatch) -> Path:
    """Qwen's first 3,000 ranks as the rank file `tokenizer: qwen` builds from (well under a second)."""
    path = tmp_path / "small.tiktoken"
    with open(qwen.find_qwen_ranks(), "rb") as src, open(path, "wb") as dst:
        dst.writelines(line for _, line in zip(range(3000), src))
    monkeypatch.setattr(qwen, "find_qwen_ranks", lambda: path)
    return path


def test_an_interrupted_qwen_rerun_leaves_the_previous_output_and_its_tokenizer(tmp_path, small_ranks,
                                                                                 monkeypatch):
    cfg = input_config(tmp_path)
    out = tmp_path / "out"
    # The previous output, made with another tokenizer whose tokenizer/ it holds (as a merge of such shards does)
    P.prepare(from_dict(DataConfig, cfg), out, encoder=Bytes(), log=LOG, quiet=True)
    (out / "tokenizer").mkdir()
    (out / "tokenizer" / "tokenizer.json").write_text(json.dumps(OLD_TOKENIZER), encoding="utf-8")
    (out / "tokenizer" / "NOTES.md").write_text("kept by a rebuild, as build_qwen_tokenizer keeps it\n")
    # read by transformers beside tokenizer.json: dropped by a rebuild (qwen.HF_TOKENIZER_EXTRAS)
    (out / "tokenizer" / "special_tokens_map.json").write_text('{"eos_token": "</s>"}', encoding="utf-8")
    before = files(out)
    assert tokenizer_dir_for(out) == out / "tokenizer"

    qwen_cfg = from_dict(DataConfig, cfg | {"tokenizer": "qwen"})
    real = P.encode_documents

    def interrupted(*a, **k):  # Ctrl-C while the documents are tokenized: after the tokenizer was loaded
        raise KeyboardInterrupt

    monkeypatch.setattr(P, "encode_documents", interrupted)
    with pytest.raises(KeyboardInterrupt):
        P.prepare(qwen_cfg, out, log=LOG, quiet=True)
    assert files(out) == before  # the tokenizer/ too: before, Qwen's was built over it here
    assert tokenizer_dir_for(out) == out / "tokenizer"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".steel.lock"]

    monkeypatch.setattr(P, "encode_documents", real)
    m = P.prepare(qwen_cfg, out, log=LOG, quiet=True)
    built = tmp_path / "built"
    qwen.build_qwen_tokenizer(built, ranks_path=small_ranks)
    assert m["tokenizer"]["fingerprint"] == dir_fingerprint(built) != Bytes.fingerprint
    got = files(out)
    assert {k[len("tokenizer/"):]: v for k, v in got.items() if k.startswith("tokenizer/")} == files(built) | {
        "NOTES.md": before["tokenizer/NOTES.md"]}
    assert tokenizer_dir_for(out) == out / "tokenizer"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".steel.lock"]

    # a rerun with the tokenizer/ in place reuses it (no rebuild: nothing staged, OUT's kept as it is)
    monkeypatch.setattr(qwen, "build_qwen_tokenizer", lambda *a, **k: pytest.fail("rebuilt a complete tokenizer/"))
    P.prepare(qwen_cfg, out, log=LOG, quiet=True)
    assert {k: v for k, v in files(out).items() if k.startswith("tokenizer/")} == {
        k: v for k, v in got.items() if k.startswith("tokenizer/")}


CHILD = TRACER + r'''
import json, sys

from steel.config import from_dict
from steel.data.config import DataConfig
import steel.data.prepare as P
import steel.runlog
from steel.tokenizer import qwen

steel.runlog.environment_report = lambda: {}  # it imports torch (seconds per child); not what is tested

out, cfg_json, ranks, old_fp, kill_at, trace = sys.argv[1:7]
out, kill_at = Path(out), int(kill_at)
qwen.find_qwen_ranks = lambda: Path(ranks)


class Bytes:  # the previous output's tokenizer
    eos_id, vocab_size, special_ids, fingerprint = 0, 257, {}, old_fp

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


trace_from_swap(P)
trace_ops(SWAP_OPS)
cfg = from_dict(DataConfig, json.loads(cfg_json))
try:
    P.prepare(cfg, out, encoder=None if cfg.tokenizer == "qwen" else Bytes(), quiet=True)
finally:
    write_trace(trace)
'''


def run_child(tmp: Path, out: Path, cfg: dict, ranks: Path, kill_at: int = -1) -> tuple[int, list[str]]:
    return run_traced(tmp, CHILD, [str(out), json.dumps(cfg), str(ranks), Bytes.fingerprint, str(kill_at)])


def test_a_kill_in_the_swap_leaves_the_previous_tokenizer_dir_or_the_new_one(tmp_path, small_ranks, capsys):
    """The staged tokenizer/ replaces OUT's in the swap, at every kill point of it: OUT is then the previous output
    with its tokenizer/ or the new one with Qwen's (`tokenizer_dir_for` takes it), never a mix."""
    cfg = input_config(tmp_path)
    new_cfg = cfg | {"tokenizer": "qwen", "chunk_tokens": 150}
    old = tmp_path / "old"
    assert run_child(tmp_path, old, cfg, small_ranks)[0] == 0
    (old / "tokenizer").mkdir()
    (old / "tokenizer" / "tokenizer.json").write_text(json.dumps(OLD_TOKENIZER), encoding="utf-8")
    new = tmp_path / "new"
    shutil.copytree(old, new)
    code, trace = run_child(tmp_path, new, new_cfg, small_ranks)
    assert code == 0
    old_files, new_files = output(old), output(new)
    assert old_files["tokenizer/tokenizer.json"] != new_files["tokenizer/tokenizer.json"]
    assert "tokenizer/qwen.tiktoken" in new_files

    def kill(out: Path, k: int) -> int:  # the prepare on a copy of the previous output, killed before op k
        return run_child(tmp_path, out, new_cfg, small_ranks, k)[0]

    seen = {"old": 0, "new": 0}
    for out, rerun, where, raw in killed_states(tmp_path, old, trace, kill):
        capsys.readouterr()
        try:
            rc = main(["data", "inspect", str(out)])  # finishes a swap left half done
        except SystemExit as e:
            rc = e.code
        assert rc in (0, None), f"{where}: inspect failed ({capsys.readouterr().err[-500:]}); OUT held {raw}"
        got = output(out)
        assert got in (old_files, new_files), f"{where}: OUT holds neither output: {sorted(got)}; raw {raw}"
        seen["old" if got == old_files else "new"] += 1
        assert tokenizer_dir_for(out) == out / "tokenizer", where
        # the next prepare, on what the kill left: the new output, nothing left behind
        P.prepare(from_dict(DataConfig, new_cfg), rerun, log=LOG, quiet=True)  # (in this process: a child less a step)
        assert output(rerun) == new_files, where
        assert sorted(p.name for p in rerun.iterdir() if p.name.startswith(".")) == [".steel.lock"], where
    assert seen["old"] and seen["new"], seen
