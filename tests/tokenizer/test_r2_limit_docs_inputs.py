"""`steel tokenizer train --input zh/ en/ --limit-docs N`: the N documents are spread over the inputs, then
over each input's files, so a directory of many files does not crowd out the other inputs (README:
"`--input zh/ en/ code/` with a limit still learns from all three")."""

import json

import steel.tokenizer.train as train_mod
from steel.tokenizer.train import train_tokenizer


def _jsonl(path, texts):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")


def _trained_on(tmp_path, monkeypatch, inputs, limit):
    seen = []
    real = train_mod.train_bpe

    def spy(docs, *a, **kw):
        docs = list(docs)
        seen.extend(docs)
        return real(iter(docs), *a, **kw)

    monkeypatch.setattr(train_mod, "train_bpe", spy)
    out = tmp_path / f"tok{limit}"
    train_tokenizer(inputs, out, vocab_size=300, min_frequency=1, limit_docs=limit, show_progress=False)
    return seen


def test_limit_docs_reaches_every_input_directory(tmp_path, monkeypatch):
    for f in range(3):  # three files in zh/, one in en/
        _jsonl(tmp_path / "zh" / f"zh{f}.jsonl", [f"zh{f}{i}" for i in range(5)])
    _jsonl(tmp_path / "en" / "en.jsonl", [f"en{i}" for i in range(5)])
    inputs = [tmp_path / "zh", tmp_path / "en"]
    # fewer documents than zh/ has files: one from each input (zh/'s first file)
    assert _trained_on(tmp_path, monkeypatch, inputs, 2) == ["zh00", "en0"]
    # 8: 4 to zh/ (2, 1, 1 over its files), 4 to en/ (a file each would have given en/ only 2)
    assert _trained_on(tmp_path, monkeypatch, inputs, 8) == ["zh00", "zh01", "zh10", "zh20", "en0", "en1", "en2", "en3"]
    # an input whose share is more than it holds leaves the rest to the inputs after it
    _jsonl(tmp_path / "one.jsonl", ["one0"])
    got = _trained_on(tmp_path, monkeypatch, [tmp_path / "one.jsonl", *inputs], 9)
    assert got == ["one0", "zh00", "zh01", "zh10", "zh20", "en0", "en1", "en2", "en3"]
