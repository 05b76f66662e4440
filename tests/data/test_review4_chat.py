"""Review 4, chat records: the role and content fields of sharegpt/openai turns take dotted names, as every
other field does (the config accepted `fields: {content: value.text}` and then every record was bad_chat)."""

from __future__ import annotations

import pytest

from steel.data.chat import ChatError, extract_messages, render_chatml


def test_sharegpt_dotted_content_field():
    rec = {"conversations": [{"from": "human", "v": {"text": "你好"}}, {"from": "gpt", "v": {"text": "你好！"}}]}
    msgs = extract_messages(rec, "sharegpt", {"content": "v.text"})
    assert msgs == [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]
    assert render_chatml(msgs) == "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n你好！<|im_end|>\n"


def test_openai_dotted_role_field():
    rec = {"messages": [{"author": {"role": "user"}, "content": "hi"},
                        {"author": {"role": "assistant"}, "content": "hello"}]}
    msgs = extract_messages(rec, "openai", {"role": "author.role"})
    assert msgs == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def test_a_turn_without_the_dotted_field_is_still_bad_chat():
    rec = {"conversations": [{"from": "human", "v": {"text": "hi"}}, {"from": "gpt", "v": "flat"}]}
    with pytest.raises(ChatError, match=r"conversations\[1\] needs string 'from' and 'v.text'") as e:
        extract_messages(rec, "sharegpt", {"content": "v.text"})
    assert e.value.reason == "bad_chat"
