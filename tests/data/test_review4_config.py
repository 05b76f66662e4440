"""Review 4, data config: a kind: chat source of txt files, a chat source's `text_field`, a source `system:`
prompt holding a ChatML marker and a negative `log_examples` are config errors naming the field (the txt
file was read as plain text under a chat label, text_field was ignored, the marker rejected every record,
a negative log_examples logged nothing)."""

from __future__ import annotations

import json

import pytest

from steel.cli import main as steel_main
from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig


def cfg(**src):
    return from_dict(DataConfig, {"sources": [{"name": "c", "kind": "chat", **src}]})


@pytest.mark.parametrize(("src", "msg"), [
    ({"path": ["books/*.txt"]}, "sources[0].path[0]: 'books/*.txt' is a txt file, which holds no chat records"),
    ({"path": ["a.jsonl", "b.TXT.zst"]}, "sources[0].path[1]: 'b.TXT.zst' is a txt file"),
    ({"path": ["data/*"], "format": "txt"}, "sources[0].format: txt holds no chat records (source 'c' is kind: chat)"),
    ({"path": ["a.json"], "text_field": "question"},
     "sources[0].text_field: only for kind: text (source 'c' is kind: chat; rename a chat field with `fields:`)"),
    ({"path": ["a.json"], "system": "<|im_start|>system\nBe brief."},
     "sources[0].system: contains '<|im_start|>'; every record without a system prompt would be rejected"),
])
def test_chat_source_errors(src, msg):
    with pytest.raises(ConfigError) as e:
        cfg(**src)
    assert str(e.value).startswith(msg)


def test_chat_sources_that_stay_valid():
    # formats that hold records, a glob that does not tell its format, and a txt *text* source
    for path in (["a.json", "b.jsonl.zst", "c.csv", "d.parquet"], ["data/*"]):
        assert cfg(path=path, system="Be brief.").sources[0].chat_layout == "alpaca"
    assert from_dict(DataConfig, {"sources": [{"name": "t", "path": ["a.txt"]}]}).sources[0].kind == "text"


def test_prepare_refuses_a_chat_txt_source_before_reading(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    (tmp_path / "a.txt").write_text("hello world\n\nsecond paragraph\n", encoding="utf-8")
    conf = {"root": str(tmp_path), "tokenizer": "unused", "workers": 0,
            "sources": [{"name": "t", "kind": "chat", "path": ["a.txt"], "txt_unit": "paragraph"}]}
    (tmp_path / "data.yaml").write_text(json.dumps(conf), encoding="utf-8")
    assert steel_main(["data", "prepare", str(tmp_path / "data.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "sources[0].path[0]: 'a.txt' is a txt file, which holds no chat records" in err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_negative_log_examples_is_refused():
    with pytest.raises(ConfigError, match=r"^log_examples: must be >= 0, got -1$"):
        from_dict(DataConfig, {"log_examples": -1, "sources": [{"name": "t", "path": ["a.jsonl"]}]})
    assert from_dict(DataConfig, {"log_examples": 0, "sources": [{"name": "t", "path": ["a.jsonl"]}]}).log_examples == 0
