"""build_sft_rows lets each conversation's messages go once it is encoded (review VH of db4996e).

README ("Memory" under steel sft): every rank keeps "the conversations' text until each is encoded". db4996e
releases a conversation's messages as it encodes it; the rows are the same whether it does or not, so only a count
of what is still alive tells: at the last conversation's encoding, the message lists of the ones before it must be
gone (they were all held, beside their int32 arrays, until the rows were built).
"""

from __future__ import annotations

import gc
import json

from steel.config import from_dict
from steel.sft import data as D

MARK = "VH记号"


def _live_conversations() -> int:
    """Message lists alive now that carry MARK (each conversation's content holds it once)."""
    n = 0
    for o in gc.get_objects():
        if type(o) is list and o and type(o[-1]) is dict and MARK in str(o[-1].get("content", "")):
            n += 1
    return n


def test_messages_are_released_as_they_are_encoded(tmp_path, qwen_tokenizer_dir, monkeypatch):
    from transformers import AutoTokenizer

    n = 120
    recs = [{"instruction": f"第{i}个问题", "input": "", "output": f"{MARK}第{i}个回答"} for i in range(n)]
    (tmp_path / "a.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "seq_len": 256,
                                      "datasets": [{"name": "a", "path": ["a.json"]}]})
    calls, alive = [], []
    encode = D.ChatTokenizer.encode

    def spy(self, messages, *a, **k):
        calls.append(1)
        if len(calls) == n:  # the last conversation: every other one is encoded
            alive.append(_live_conversations())
        return encode(self, messages, *a, **k)

    monkeypatch.setattr(D.ChatTokenizer, "encode", spy)
    ids, _ = D.build_sft_rows(cfg, AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir)), {})
    assert len(calls) == n and ids.shape[0] >= 1
    # the one being encoded (held by the loop and this call); before db4996e all 120
    assert alive == [1], alive
