"""`tokenizer train --limit-docs`: the "reading corpus" bar counts each byte of a file once. A further pass
re-reads the start of a file cut at its share, and its bytes were told to the bar again (past 100%)."""
import json

from steel.tokenizer.train import iter_corpus


def _jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_a_second_pass_does_not_count_bytes_twice(tmp_path):
    big = _jsonl(tmp_path / "big.jsonl", [f"doc {i}" for i in range(1000)])  # told in steps of 256 lines
    one = _jsonl(tmp_path / "one.jsonl", ["only"])
    total = big.stat().st_size + one.stat().st_size
    told = []
    # 1001 of 1001: big gives its share of 501 (cut after telling its first 256 lines), one gives 1 of its 500,
    # a second pass reads big again from its start and on to its end: every byte read, each told once.
    docs = list(iter_corpus([big, one], limit_docs=1001, on_bytes=told.append))
    assert len(docs) == 1001 and len(set(docs)) == 1001
    assert sum(told) == total
    # cut again in the second pass (900 of 1001): no byte told twice
    told.clear()
    docs = list(iter_corpus([big, one], limit_docs=900, on_bytes=told.append))
    assert len(docs) == 900
    assert sum(told) <= total
