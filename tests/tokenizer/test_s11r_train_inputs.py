"""`steel tokenizer train --input DIR` names the files of DIR it does not read, and says what it trained on.

Before, a .parquet and a .csv beside a .jsonl.gz in the directory were left out without a word, and the
final line gave no count of files or documents. Also: a tokenizer directory that does not exist is told
apart from one without tokenizer.json.
"""

from __future__ import annotations

import gzip
import json
import logging

import pytest

import steel.tokenizer.train as train_mod
from steel.cli import UserError, main
from steel.tokenizer import load_tokenizer
from steel.tokenizer.engine import read_tokenizer_json


def corpus(d):
    d.mkdir()
    (d / "a.jsonl").write_text("".join(json.dumps({"text": f"文档 {i} steel"}) + "\n" for i in range(4)),
                               encoding="utf-8")
    (d / "sub").mkdir()
    with gzip.open(d / "sub" / "b.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"text": "gz document"}) + "\n")
    (d / "notes.txt").write_text("line one of a long note\n" * 5, encoding="utf-8")  # one document
    for name in ("table.parquet", "stories.csv", "sub/records.json"):
        (d / name).write_bytes(b"not read")
    return d


def test_skipped_files_are_named_and_the_counts_told(tmp_path, monkeypatch, caplog):
    d = corpus(tmp_path / "in")
    monkeypatch.setattr(train_mod, "TXT_PIECE", 30)  # notes.txt comes in 4 pieces: still one document
    with caplog.at_level(logging.WARNING, logger="steel"):
        train_mod.train_tokenizer([d], tmp_path / "out", 300, 1, show_progress=False)
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: --input {d}: skipped 3 file(s) of a type not read (.jsonl, .jsonl.zst, .jsonl.gz, .txt): "
        "stories.csv, sub/records.json, table.parquet; convert them to JSONL to train on them"]
    read: dict = {}
    train_mod.train_tokenizer([d], tmp_path / "out2", 300, 1, show_progress=False, read=read)
    assert read == {"documents": 4 + 1 + 1, "files": 3, "of_files": 3}


def test_limit_docs_counts_the_files_it_reached(tmp_path):
    d = corpus(tmp_path / "in")
    read: dict = {}
    train_mod.train_tokenizer([d], tmp_path / "out", 300, 1, limit_docs=1, show_progress=False, read=read)
    assert read == {"documents": 1, "files": 1, "of_files": 3}


def test_cli_final_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    d = corpus(tmp_path / "in")
    assert main(["tokenizer", "train", "--input", str(d), "--vocab-size", "300", "--out", str(tmp_path / "o"),
                 "--min-frequency", "1"]) == 0
    assert ", trained on 6 documents from 3 files; <|endoftext|>=" in capsys.readouterr().out
    assert main(["tokenizer", "train", "--input", str(d), "--vocab-size", "300", "--out", str(tmp_path / "p"),
                 "--min-frequency", "1", "--limit-docs", "2"]) == 0
    assert ", trained on 2 documents from 2 of the 3 files;" in capsys.readouterr().out


def test_a_directory_of_unread_files_names_them(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "x.parquet").write_bytes(b"")
    with pytest.raises(UserError, match=r"directory holds no \.jsonl/\.jsonl\.zst/\.jsonl\.gz/\.txt file "
                                        r"\(only x\.parquet\)"):
        train_mod.train_tokenizer([d], tmp_path / "out", 300, show_progress=False)


def test_missing_tokenizer_dir_is_told_apart(tmp_path):
    with pytest.raises(UserError, match=r"nope: does not exist \(expected a tokenizer directory holding "
                                        r"tokenizer\.json\)$"):
        read_tokenizer_json(tmp_path / "nope")
    with pytest.raises(UserError, match=r": not a tokenizer directory \(no tokenizer\.json\)$"):
        read_tokenizer_json(tmp_path)
    with pytest.raises(UserError, match=r"nope: does not exist .*; build one with"):
        load_tokenizer(tmp_path / "nope")
