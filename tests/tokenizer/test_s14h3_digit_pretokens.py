"""Qwen's pre-tokenizer takes one digit per piece (`\\p{N}`, not GPT-4's `\\p{N}{1,3}`): numbers are spelled
digit by digit. With Qwen's own rank file the slip changes nothing (it holds no multi-digit token), so the
Qwen tests could not see it; a BPE trained by `steel tokenizer train` on text full of numbers would learn
multi-digit tokens under the wrong pattern. Checked on the trained vocabulary and on the spelling of 12345."""

from __future__ import annotations

import re

from steel.tokenizer.train import train_bpe


def test_trained_vocabulary_has_no_multi_digit_token():
    texts = [f"order {i * 7919 % 100000} costs {i * 31 % 997}.{i % 100:02d} yuan, 2026-12-{i % 28 + 1:02d}"
             for i in range(400)]
    tok = train_bpe(texts, vocab_size=400, min_frequency=2)
    # (byte-level BPE maps the ASCII digits to themselves)
    multi = [t for t in tok.get_vocab() if len(re.findall("[0-9]", t)) > 1]
    assert multi == []
    ids = tok.encode("12345", add_special_tokens=False).ids
    assert [tok.id_to_token(i) for i in ids] == list("12345")
