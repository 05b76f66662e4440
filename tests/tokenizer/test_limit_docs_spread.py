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


def test_what_the_last_inputs_cannot_use_goes_back_to_the_earlier_ones(tmp_path):
    from steel.tokenizer.train import expand_input_groups

    (tmp_path / "zh").mkdir()
    for f in range(7):
        _jsonl(tmp_path / "zh" / f"zh{f}.jsonl", [f"zh{f}.{i}" for i in range(3)])
    (tmp_path / "en").mkdir()
    for f in range(5):
        _jsonl(tmp_path / "en" / f"en{f}.jsonl", [f"en{f}.{i}" for i in range(3)])
    (tmp_path / "code").mkdir()
    _jsonl(tmp_path / "code" / "code.jsonl", ["c0", "c1"])
    groups = expand_input_groups([tmp_path / "zh", tmp_path / "en", tmp_path / "code"])  # 21 + 15 + 2 documents
    for limit, want in ((10, 10), (30, 30), (38, 38), (100, 38)):
        docs = list(iter_corpus(groups, limit_docs=limit))
        assert len(docs) == want and len(set(docs)) == want, (limit, docs)  # N when there are N, none twice
        assert {d[0] for d in docs} == {"z", "e", "c"}
    # 30: zh/ 10, en/ ceil(20 / 2) = 10, code/ holds 2 of its 10; a second pass shares the 8 left between the
    # inputs cut at their share, 4 each, read on from where they stopped
    docs = list(iter_corpus(groups, limit_docs=30))
    assert [sum(d.startswith(p) for d in docs) for p in ("zh", "en", "c")] == [14, 14, 2]
