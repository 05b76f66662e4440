"""A data dir's `tokenizer/` is the tokenizer its ids were made with, or absent: an incomplete one (an
interrupted build) is rebuilt, and one left by an earlier output with another tokenizer is removed by
prepare and `merge --overwrite` and is not taken by `tokenizer_dir_for`."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.merge import merge
from steel.data.prepare import prepare
from steel.data.tokenize import dir_fingerprint, load_data_encoder, tokenizer_dir_for
from steel.tokenizer import qwen

LOG = logging.getLogger("test.steel.data")


@pytest.fixture(scope="module")
def small_tok(tmp_path_factory) -> Path:
    """Another tokenizer (Qwen's first 3,000 ranks): another fingerprint, built in well under a second."""
    d = tmp_path_factory.mktemp("small_tok")
    with open(qwen.find_qwen_ranks(), "rb") as src, open(d / "small.tiktoken", "wb") as dst:
        dst.writelines(line for _, line in zip(range(3000), src))
    return qwen.build_qwen_tokenizer(d / "tok", ranks_path=d / "small.tiktoken")


@pytest.fixture()
def fake_build(monkeypatch, qwen_tokenizer_dir):
    """`build_qwen_tokenizer` as a copy of the session's Qwen build (the real one takes ~3 s); records calls."""
    calls = []

    def build(out_dir, *a, **k):
        calls.append(Path(out_dir))
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(qwen_tokenizer_dir, out_dir)
        return Path(out_dir)

    monkeypatch.setattr(qwen, "build_qwen_tokenizer", build)
    return calls


def truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:1000])


@pytest.mark.parametrize("damage", ["no rank file", "no chat template", "truncated tokenizer.json",
                                    "truncated rank file"])
def test_incomplete_qwen_dir_is_rebuilt(tmp_path, qwen_tokenizer_dir, fake_build, caplog, damage):
    """Before, prepare only looked for tokenizer.json: without qwen.tiktoken it silently used the slower HF
    engine, and a truncated tokenizer.json failed every rerun without saying what to delete."""
    tok = tmp_path / "tokenizer"
    shutil.copytree(qwen_tokenizer_dir, tok)
    {"no rank file": lambda: (tok / "qwen.tiktoken").unlink(),
     "no chat template": lambda: (tok / "chat_template.jinja").unlink(),
     "truncated tokenizer.json": lambda: truncate(tok / "tokenizer.json"),
     "truncated rank file": lambda: truncate(tok / "qwen.tiktoken")}[damage]()
    with caplog.at_level(logging.WARNING):
        enc = load_data_encoder("qwen", tmp_path, num_threads=1, log=LOG)
    assert fake_build == [tok]
    assert enc.engine == "tiktoken" and enc.fingerprint == dir_fingerprint(qwen_tokenizer_dir)
    assert "rebuilding Qwen's tokenizer" in caplog.text


def test_complete_qwen_dir_is_reused(tmp_path, qwen_tokenizer_dir, fake_build):
    shutil.copytree(qwen_tokenizer_dir, tmp_path / "tokenizer")
    assert load_data_encoder("qwen", tmp_path, num_threads=1, log=LOG).engine == "tiktoken"
    assert fake_build == []
    load_data_encoder("qwen", tmp_path / "fresh", num_threads=1, log=LOG)  # none there: built
    assert fake_build == [tmp_path / "fresh" / "tokenizer"]


def cfg_for(d: Path, tokenizer: str) -> DataConfig:
    return from_dict(DataConfig, {"root": str(d), "tokenizer": tokenizer, "chunk_tokens": 8, "workers": 0,
                                  "filters": [], "sources": [{"name": "t", "path": ["*.jsonl"]}]})


@pytest.fixture()
def inputs(tmp_path):
    for k in range(2):
        (tmp_path / f"f{k}.jsonl").write_text("".join(json.dumps({"text": f"file {k} doc {j}"}) + "\n"
                                                      for j in range(3)), encoding="utf-8")
    return tmp_path


def test_reprepare_with_another_tokenizer_removes_the_stale_one(inputs, qwen_tokenizer_dir, small_tok, fake_build):
    """The reviewer's repro: `tokenizer: qwen` into OUT, then `tokenizer: DIR` into OUT. Before, OUT/tokenizer
    (Qwen) stayed and was what `tokenizer_dir_for` and `steel chat` took for the new ids."""
    out = inputs / "out"
    first = prepare(cfg_for(inputs, "qwen"), out, log=LOG, quiet=True)
    assert first["tokenizer"]["fingerprint"] == dir_fingerprint(qwen_tokenizer_dir)
    assert tokenizer_dir_for(out) == out / "tokenizer"
    second = prepare(cfg_for(inputs, str(small_tok)), out, log=LOG, quiet=True)
    assert second["tokenizer"]["fingerprint"] == dir_fingerprint(small_tok) != first["tokenizer"]["fingerprint"]
    # gone (`steel chat DATA` looked there first), and nothing left beside it
    assert sorted(p.name for p in out.iterdir() if "tokenizer" in p.name) == []
    assert tokenizer_dir_for(out) == small_tok
    # The same tokenizer again: a matching OUT/tokenizer/ (here a copy of the spec) is kept.
    shutil.copytree(small_tok, out / "tokenizer")
    prepare(cfg_for(inputs, str(small_tok)), out, log=LOG, quiet=True)
    assert dir_fingerprint(out / "tokenizer") == second["tokenizer"]["fingerprint"]


def test_tokenizer_dir_for_skips_a_stale_own_dir(inputs, qwen_tokenizer_dir, small_tok):
    out = inputs / "out"
    m = prepare(cfg_for(inputs, str(small_tok)), out, log=LOG, quiet=True)
    shutil.copytree(qwen_tokenizer_dir, out / "tokenizer")  # as a Steel before this fix left it
    assert tokenizer_dir_for(out) == small_tok  # the manifest's spec, whose fingerprint matches
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["tokenizer"]["spec"] = str(inputs / "moved-away")
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    notes: list[str] = []
    assert tokenizer_dir_for(out, notes=notes) is None
    assert any(f"tokenizer fingerprint {dir_fingerprint(qwen_tokenizer_dir)[:12]} differs" in n
               and m["tokenizer"]["fingerprint"][:12] in n for n in notes)


def test_merge_overwrite_replaces_a_stale_tokenizer(inputs, qwen_tokenizer_dir, small_tok):
    shards = [inputs / "s0", inputs / "s1"]
    for k, s in enumerate(shards):
        prepare(cfg_for(inputs, str(small_tok)), s, shard=(k, 2), log=LOG, quiet=True)
    out = inputs / "merged"
    merge(out, shards, log=LOG)
    shutil.copytree(qwen_tokenizer_dir, out / "tokenizer")  # as a merge of Qwen shards into OUT left it
    merge(out, shards, log=LOG, overwrite=True)
    assert not (out / "tokenizer").exists()  # before: kept, and taken for the new ids
    # Shards that carry the tokenizer (as `tokenizer: qwen` builds into each) pass a copy on, over the stale one.
    shutil.copytree(small_tok, shards[1] / "tokenizer")
    shutil.copytree(qwen_tokenizer_dir, out / "tokenizer")
    merge(out, shards, log=LOG, overwrite=True)
    assert dir_fingerprint(out / "tokenizer") == dir_fingerprint(small_tok)
    assert tokenizer_dir_for(out) == out / "tokenizer"
    assert sorted(p.name for p in out.iterdir() if "tokenizer" in p.name) == ["tokenizer"]
