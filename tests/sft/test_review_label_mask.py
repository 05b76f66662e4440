"""SFT rows have the token ids `steel chat` prompts with, whatever the tokenizer's pre-tokenizer.

A SentencePiece-style tokenizer (Metaspace, prepend_scheme "first": Llama-2, Mistral, Yi) prepends "▁" to
the first piece of a text only: encoding each ChatML piece on its own (the role header, the "\\n" after
`<|im_end|>`) gave "▁user", "▁\\n", ... where the rendered conversation, encoded once as at inference,
has "user", "\\n". SFT trained on ids the model never sees when chatting.
"""

from __future__ import annotations

import pytest
from tiny_models import CHATML_TEMPLATE, build_metaspace_tokenizer

from steel.sft import data as D

CONV = [
    {"role": "system", "content": "说法"},
    {"role": "user", "content": "甲乙丙丁"},
    {"role": "assistant", "content": "答案是A"},
    {"role": "user", "content": "\n请计算"},
    {"role": "assistant", "content": "\n\n题目：B"},
]


@pytest.fixture(scope="module")
def chatml_metaspace():
    tok = build_metaspace_tokenizer(extra=("user", "assistant", "system", "\n"))
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]})
    tok.chat_template = CHATML_TEMPLATE
    return tok


def test_rows_have_the_ids_of_the_rendered_conversation_with_a_metaspace_tokenizer(chatml_metaspace):
    tok = chatml_metaspace
    ids, labels = D.ChatTokenizer(tok).encode(CONV)
    # Reference: the chat template's text, encoded once (what `chat_prompt_ids` does at inference).
    text = tok.apply_chat_template(CONV, tokenize=False) + "<|endoftext|>"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert "▁" not in tok.convert_ids_to_tokens(enc["input_ids"])  # no piece opens the text: no prefix
    assert tok.convert_ids_to_tokens(ids) == tok.convert_ids_to_tokens(enc["input_ids"])
    # Hand-built mask: trained = the characters of each assistant content and its <|im_end|>.
    trained, pos = set(), 0
    for m in CONV:
        start = pos + len(f"<|im_start|>{m['role']}\n")
        end = start + len(m["content"]) + len("<|im_end|>")
        if m["role"] == "assistant":
            trained.update(range(start, end))
        pos = end + 1
    want = [t if any(c in trained for c in range(a, b)) else -100 for t, (a, b) in zip(ids, enc["offset_mapping"])]
    assert labels == want
    assert tok.decode([t for t in labels if t != -100]).replace(" ", "") == "答案是A<|im_end|>\n\n题目：B<|im_end|>"
    # loss_on_prompt: the same ids, all trained.
    assert D.ChatTokenizer(tok).encode(CONV, loss_on_prompt=True) == (ids, ids)
