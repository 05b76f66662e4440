"""`steel chat` (and `generate --chat`) with a tokenizer that has no chat template is refused at startup, before
the model is loaded, with one error line: `steel chat` loaded the model, printed its prompt and failed only at the
first message (and an empty stdin ended "successfully"). A tokenizer with a template is not refused."""

from __future__ import annotations

import io
import sys

import pytest
from tiny_models import build_metaspace_tokenizer, build_tiny_llama

import steel.infer.load as load
from steel.cli import main as steel_main


@pytest.fixture
def no_template_dir(tmp_path):
    d = tmp_path / "llama"
    tok = build_metaspace_tokenizer(d)
    assert not tok.chat_template
    build_tiny_llama(len(tok)).save_pretrained(str(d))
    return d


def _count_model_loads(monkeypatch) -> list:
    loads: list = []
    real = load.load_model
    monkeypatch.setattr(load, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    return loads


@pytest.mark.parametrize("stdin", ["", "你好\n"])
def test_chat_without_template_is_refused_before_the_model_loads(no_template_dir, monkeypatch, capsys, stdin):
    loads = _count_model_loads(monkeypatch)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert steel_main(["chat", "--model", str(no_template_dir), "--device", "cpu"]) == 2
    got = capsys.readouterr()
    assert got.err.startswith(f"steel: error: steel chat: {no_template_dir}'s tokenizer has no chat template")
    assert got.err.count("\n") == 1 and got.out == ""
    assert loads == []


def test_generate_chat_without_template_is_refused_before_the_model_loads(no_template_dir, monkeypatch, capsys):
    loads = _count_model_loads(monkeypatch)
    assert steel_main(["generate", "--model", str(no_template_dir), "--chat", "--prompt", "你好",
                       "--device", "cpu"]) == 2
    assert "steel generate --chat: " in capsys.readouterr().err and loads == []
    # a plain prompt needs no template
    assert steel_main(["generate", "--model", str(no_template_dir), "--prompt", "甲", "--max-new-tokens", "2",
                       "--temperature", "0", "--device", "cpu"]) == 0
    assert len(loads) == 1


def test_chat_with_a_template_still_runs(tiny_llama_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("你好\n"))
    assert steel_main(["chat", "--model", str(tiny_llama_dir), "--device", "cpu", "--max-new-tokens", "3",
                       "--temperature", "0"]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # one reply line
