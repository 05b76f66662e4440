"""STEEL_NO_PROGRESS turns off the `tokenizers` trainer's own bars too ("Tokenize words", "Compute merges"),
which `steel tokenizer train` shows on a terminal: only Steel's "reading corpus" bar obeyed it."""

import json
import sys

import pytest

import steel.tokenizer.train as train_mod


@pytest.mark.parametrize("quiet", [False, True])
def test_trainer_bars_follow_steel_no_progress(tmp_path, monkeypatch, quiet):
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "钢 steel"}) + "\n", encoding="utf-8")
    if quiet:
        monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    else:
        monkeypatch.delenv("STEEL_NO_PROGRESS", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: the only place the bars show
    shown = []
    real = train_mod.train_bpe

    def spy(docs, vocab_size, min_frequency, show_progress):
        shown.append(show_progress)
        return real(docs, vocab_size, min_frequency, False)

    monkeypatch.setattr(train_mod, "train_bpe", spy)
    train_mod.train_tokenizer([tmp_path / "a.jsonl"], tmp_path / "out", vocab_size=300, min_frequency=1)
    assert shown == [not quiet]
