"""`steel tokenizer train --limit-docs N` takes its N documents from every input, not the first file's."""
import json

from steel.tokenizer.train import iter_corpus


def _jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_limit_docs_is_spread_over_the_inputs(tmp_path):
    zh = _jsonl(tmp_path / "zh.jsonl", [f"zh{i}" for i in range(10)])
    short = _jsonl(tmp_path / "short.jsonl", ["s0"])
    en = _jsonl(tmp_path / "en.jsonl", [f"en{i}" for i in range(10)])
    txt = tmp_path / "code.txt"
    txt.write_text("def f():\n    pass\n", encoding="utf-8")
    # 7 over 2 files: ceil(7/2) = 4 from zh, then the 3 left from en.
    assert list(iter_corpus([zh, en], limit_docs=7)) == ["zh0", "zh1", "zh2", "zh3", "en0", "en1", "en2"]
    # 6 over 3: zh 2, short has 1 of its 2 and leaves the other to en, which gives ceil(3/1) = 3.
    assert list(iter_corpus([zh, short, en], limit_docs=6)) == ["zh0", "zh1", "s0", "en0", "en1", "en2"]
    # a .txt file is one document (given whole), counted against its share
    assert list(iter_corpus([txt, en], limit_docs=3)) == ["def f():\n    pass\n", "en0", "en1"]
    # fewer documents than files: the first files give one each
    assert list(iter_corpus([zh, short, en], limit_docs=2)) == ["zh0", "s0"]
    # a limit above the corpus reads everything once
    assert len(list(iter_corpus([zh, short, en], limit_docs=100))) == 21
