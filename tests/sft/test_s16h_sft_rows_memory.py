"""SFT rows are built without a Python object per token.

Scale audit (session 16): `build_sft_rows` held every encoded conversation as two Python lists (a list slot per
token and an int object per id, ~50 bytes per token) and `make_rows` built each row as a pair of lists before the
tensors (~16 bytes per token more): ~40 GB per rank for a 500M-token SFT set, whose rows take 8 GB as tensors.
Now an encoded conversation is two int32 arrays (8 bytes per token) and rows are written straight into the tensors.
Memory is checked by the size of what is held (objects counted once each) and by tracemalloc's peak of the Python
heap (the tensors' storage is torch's, not traced), not by timing.
"""

from __future__ import annotations

import json
import sys
import tracemalloc

import numpy as np
import pytest
import torch

from steel.config import from_dict
from steel.sft import data as D


def _reference_rows(encoded, seq_len: int, packing: bool, pad_id: int):
    """Greedy packing by hand: a row takes conversations in order while they fit; too long ones are skipped."""
    rows, cur = [], []
    for ids, lab in encoded:
        ids, lab = list(map(int, ids)), list(map(int, lab))
        if len(ids) > seq_len:
            continue
        if cur and (not packing or sum(len(i) for i, _ in cur) + len(ids) > seq_len):
            rows.append(cur)
            cur = []
        cur.append((ids, lab))
    if cur:
        rows.append(cur)
    out_ids = [sum((i for i, _ in r), []) for r in rows]
    out_lab = [sum((la for _, la in r), []) for r in rows]
    return ([r + [pad_id] * (seq_len - len(r)) for r in out_ids],
            [r + [D.IGNORE] * (seq_len - len(r)) for r in out_lab])


def _conversations(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 400))
        ids = rng.integers(1000, 150_000, k).tolist()
        cut = int(rng.integers(0, k))
        out.append((ids, [D.IGNORE] * cut + ids[cut:]))
    return out


@pytest.mark.parametrize("packing", [True, False])
def test_make_rows_arrays_and_lists_give_the_reference_rows(packing):
    enc = _conversations(300) + [([7] * 600, [7] * 600)]  # one too long for seq_len
    seq_len = 512
    want_ids, want_lab = _reference_rows(enc, seq_len, packing, pad_id=3)
    stats = {}
    ids, lab = D.make_rows(enc, seq_len, packing, pad_id=3, stats=stats)
    assert ids.dtype == lab.dtype == torch.long
    assert ids.tolist() == want_ids and lab.tolist() == want_lab
    assert stats["too_long_dropped"] == 1
    arrays = [(np.array(i, dtype=np.int32), np.array(la, dtype=np.int32)) for i, la in enc]
    ids2, lab2 = D.make_rows(arrays, seq_len, packing, pad_id=3)
    assert torch.equal(ids, ids2) and torch.equal(lab, lab2)


def test_make_rows_holds_no_python_list_per_row():
    enc = _conversations(1500)  # lists, as `ChatTokenizer.encode` returns them (and as the old code took them)
    tokens = sum(len(i) for i, _ in enc)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        ids, _ = D.make_rows(enc, 2048, True, pad_id=0)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # Before: the rows as lists of Python ints before the tensors (>= 16 bytes per token); now one row's
    # temporaries (2 x 2048 int64) and the layout (8 bytes per conversation).
    assert ids.shape[0] > 50
    assert peak < 2 * tokens, f"make_rows' Python heap peak {peak:,} B for {tokens:,} tokens"


def _held_bytes(obj) -> int:
    """Bytes of `obj` and everything it holds, each object counted once (numpy arrays with their data)."""
    seen: set[int] = set()
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, (list, tuple)):
            stack.extend(o)
    return total


def test_build_sft_rows_holds_conversations_as_compact_arrays(tmp_path, qwen_tokenizer_dir, monkeypatch):
    from transformers import AutoTokenizer

    # 300 conversations of ~100-300 Chinese characters each (written here, not third-party text)
    rng = np.random.default_rng(1)
    recs = [{"instruction": "".join(chr(0x4E00 + int(x)) for x in rng.integers(0, 3000, int(rng.integers(50, 150)))),
             "input": "",
             "output": "".join(chr(0x4E00 + int(x)) for x in rng.integers(0, 3000, int(rng.integers(50, 150))))}
            for _ in range(300)]
    (tmp_path / "a.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "seq_len": 1024, "packing": True,
                                      "datasets": [{"name": "a", "path": ["a.json"]}]})
    seen = {}
    make_rows = D.make_rows

    def spy(encoded, *a, **k):
        seen["encoded"] = encoded
        return make_rows(encoded, *a, **k)

    monkeypatch.setattr(D, "make_rows", spy)
    tok = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir))
    ids, _ = D.build_sft_rows(cfg, tok, {})
    enc = seen["encoded"]
    tokens = sum(len(i) for i, _ in enc)
    assert len(enc) == 300 and tokens > 300 * 100
    # the rows hold exactly the encoded conversations, in order (packing)
    want_ids, _ = _reference_rows(enc, 1024, True, pad_id=D.ChatTokenizer(tok).eos)
    assert ids.tolist() == want_ids
    per_token = _held_bytes(enc) / tokens
    # int32 ids + int32 labels = 8 B per token, plus two array headers per conversation (~0.5 B per token here).
    # Before: two lists of Python ints, >= 16 B per token for the list slots alone.
    assert per_token < 12, f"encoded conversations hold {per_token:.1f} B per token"
