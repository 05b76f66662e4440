"""Review 4, tokenization: a chat source with a tokenizer that has no ChatML special tokens is one error
line naming the missing token (it was a bare KeyError traceback from the worker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steel.cli import UserError
from steel.cli import main as steel_main


def no_chatml_tokenizer(d: Path) -> Path:
    """A tiny byte-level BPE whose only special token is <|endoftext|> (like GPT-2's: no ChatML markers)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["hello world 你好 世界"] * 10, trainer)
    d.mkdir()
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}), encoding="utf-8")
    return d


def test_encode_documents_names_the_missing_marker(tmp_path):
    from steel.data.tokenize import encode_documents
    from steel.tokenizer.engine import load_encoder

    enc = load_encoder(no_chatml_tokenizer(tmp_path / "tok"))
    # text documents need no marker: encoded as before, EOS appended
    tokens, lengths = encode_documents(enc, ["hello world"], [False])
    assert tokens.tolist() == enc.encode("hello world") + [enc.eos_id] and lengths.tolist() == [len(tokens)]
    with pytest.raises(UserError, match=r"no special token '<\|im_start\|>': chat sources \(kind: chat\)"):
        encode_documents(enc, ["<|im_start|>user\nhi<|im_end|>\n"], [True])


@pytest.mark.parametrize("workers", [0, 2])
def test_prepare_chat_source_without_chatml_tokens_is_one_error(tmp_path, capsys, monkeypatch, workers):
    monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    tok = no_chatml_tokenizer(tmp_path / "tok")
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": "hello world"}) + "\n", encoding="utf-8")
    (tmp_path / "chat.json").write_text(json.dumps([{"instruction": "你好吗", "output": "很好"}]), encoding="utf-8")
    cfg = {"root": str(tmp_path), "tokenizer": str(tok), "workers": workers,
           "sources": [{"name": "t", "path": ["t.jsonl"]}, {"name": "c", "kind": "chat", "path": ["chat.json"]}]}
    (tmp_path / "data.yaml").write_text(json.dumps(cfg), encoding="utf-8")
    out = tmp_path / "out"
    assert steel_main(["data", "prepare", str(tmp_path / "data.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "KeyError" not in err
    assert f"steel: error: {tok}: no special token '<|im_start|>'" in err
    assert not (out / "manifest.json").exists() and not list(out.glob("*.bin"))


def _never_read(*args, **kwargs):
    raise AssertionError("a source was read before the configuration error")


def test_prepare_refuses_a_tokenizer_without_chatml_before_reading(tmp_path, capsys, monkeypatch):
    """The check runs once the tokenizer is loaded, not at the first chat record after the text sources."""
    monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    monkeypatch.setattr("steel.data.prepare.SourceReader", _never_read)
    tok = no_chatml_tokenizer(tmp_path / "tok")
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": "hello world"}) + "\n", encoding="utf-8")
    (tmp_path / "chat.json").write_text(json.dumps([{"instruction": "你好吗", "output": "很好"}]), encoding="utf-8")
    cfg = {"root": str(tmp_path), "tokenizer": str(tok), "workers": 0,
           "sources": [{"name": "t", "path": ["t.jsonl"]}, {"name": "c", "kind": "chat", "path": ["chat.json"]}]}
    (tmp_path / "data.yaml").write_text(json.dumps(cfg), encoding="utf-8")
    assert steel_main(["data", "prepare", str(tmp_path / "data.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"steel: error: {tok}: no special token '<|im_start|>'" in err and "AssertionError" not in err


def test_prepare_refuses_a_txt_file_matched_by_a_chat_source_pattern(tmp_path, capsys, monkeypatch,
                                                                     qwen_tokenizer_dir):
    """`data/*` tells the config check nothing; the file list does: a chat source cannot read txt files."""
    monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    monkeypatch.setattr("steel.data.prepare.SourceReader", _never_read)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.json").write_text(json.dumps([{"instruction": "你好吗", "output": "很好"}]),
                                              encoding="utf-8")
    (tmp_path / "data" / "b.txt").write_text("你好吗\n很好\n", encoding="utf-8")
    cfg = {"root": str(tmp_path), "tokenizer": str(qwen_tokenizer_dir), "workers": 0,
           "sources": [{"name": "c", "kind": "chat", "path": ["data/*"]}]}
    (tmp_path / "data.yaml").write_text(json.dumps(cfg), encoding="utf-8")
    assert steel_main(["data", "prepare", str(tmp_path / "data.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "sources[0].path (source 'c') matches" in err and "b.txt, a txt file: a chat source" in err
    assert "AssertionError" not in err


def test_prepare_out_is_the_output_recorded(tmp_path, monkeypatch, qwen_tokenizer_dir):
    """`--out DIR` is the directory the resolved config in prepare.log and manifest.json names (they kept the
    config file's `output`, a directory never written)."""
    monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": "你好，世界。" * 20}) + "\n", encoding="utf-8")
    cfg = {"root": str(tmp_path), "tokenizer": str(qwen_tokenizer_dir), "workers": 0, "output": "runs/elsewhere",
           "sources": [{"name": "t", "path": ["t.jsonl"]}]}
    (tmp_path / "data.yaml").write_text(json.dumps(cfg), encoding="utf-8")
    out = tmp_path / "out"
    assert steel_main(["data", "prepare", str(tmp_path / "data.yaml"), "--out", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["config"]["output"] == str(out)
    assert f"output: {out}" in (out / "prepare.log").read_text(encoding="utf-8")
    assert not (tmp_path / "runs").exists()
