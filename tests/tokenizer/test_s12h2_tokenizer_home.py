"""`~` in `steel tokenizer` path arguments is the home directory, also where a shell leaves it as it is
(`--out=~/tok`, a quoted "~/corpus"): it was taken literally ("--input ~/corpus: no such file or directory";
the tokenizer written into ./~/tok)."""

from __future__ import annotations

from steel.cli import main
from steel.tokenizer.engine import load_encoder


def test_train_and_qwen_expand_home(tmp_path, monkeypatch, small_ranks_file):
    home = tmp_path / "home"
    (home / "corpus").mkdir(parents=True)
    (home / "corpus" / "c.jsonl").write_text('{"text": "hello world, steel tokenizer 你好世界"}\n' * 50, encoding="utf-8")
    (home / "small.tiktoken").write_bytes(small_ranks_file.read_bytes())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert main(["tokenizer", "train", "--input", "~/corpus", "--vocab-size", "280", "--out=~/bpe"]) == 0
    assert load_encoder(home / "bpe").vocab_size == 280
    assert main(["tokenizer", "qwen", "~/q", "--ranks", "~/small.tiktoken"]) == 0
    assert load_encoder(home / "q").vocab_size == 3003
    assert not (tmp_path / "~").exists()
