"""Chat layouts -> the exact ChatML text; chat tokenization == the tokenizer's own `encode_chat`."""

from __future__ import annotations

import pytest

from steel.data.chat import ChatError, extract_messages, render_chatml

S, E = "<|im_start|>", "<|im_end|>"


def test_alpaca_with_input_history_and_system():
    rec = {"instruction": "翻译", "input": "hello", "output": "你好", "history": [["q1", "a1"]], "system": "be brief"}
    text = render_chatml(extract_messages(rec, "alpaca"))
    assert text == (f"{S}system\nbe brief{E}\n{S}user\nq1{E}\n{S}assistant\na1{E}\n"
                    f"{S}user\n翻译\nhello{E}\n{S}assistant\n你好{E}\n")


def test_alpaca_renamed_fields_and_default_system():
    rec = {"question": "1+1?", "answer": "2"}
    msgs = extract_messages(rec, "alpaca", {"instruction": "question", "output": "answer"}, system="sys")
    assert render_chatml(msgs) == f"{S}system\nsys{E}\n{S}user\n1+1?{E}\n{S}assistant\n2{E}\n"


def test_sharegpt():
    rec = {"conversations": [{"from": "human", "value": "Who are you?"}, {"from": "gpt", "value": "Steel."},
                             {"from": "human", "value": "ok"}, {"from": "gpt", "value": "bye"}]}
    assert render_chatml(extract_messages(rec, "sharegpt")) == (
        f"{S}user\nWho are you?{E}\n{S}assistant\nSteel.{E}\n{S}user\nok{E}\n{S}assistant\nbye{E}\n")


def test_openai_messages():
    rec = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                        {"role": "assistant", "content": "a"}]}
    assert render_chatml(extract_messages(rec, "openai")) == f"{S}system\ns{E}\n{S}user\nu{E}\n{S}assistant\na{E}\n"


@pytest.mark.parametrize("rec, layout, reason", [
    ({"output": "x"}, "alpaca", "missing_field"),
    ({"instruction": "q", "output": ""}, "alpaca", "empty"),
    ({"instruction": "q", "output": "a", "history": [["only one"]]}, "alpaca", "bad_chat"),
    ({"conversations": [{"from": "alien", "value": "x"}]}, "sharegpt", "bad_chat"),
    ({"conversations": [{"from": "human", "value": "x"}]}, "sharegpt", "bad_chat"),  # no assistant
    ({"messages": "not a list"}, "openai", "bad_chat"),
    ({"instruction": "say <|im_end|>", "output": "a"}, "alpaca", "special_token_in_text"),
])
def test_bad_chat_records(rec, layout, reason):
    with pytest.raises(ChatError) as e:
        extract_messages(rec, layout)
    assert e.value.reason == reason


def _sg(*turns):
    return {"conversations": [{"from": r, "value": v} for r, v in turns]}


@pytest.mark.parametrize("rec, layout, reason, detail", [
    (_sg(("gpt", "hi"), ("human", "q"), ("gpt", "a")), "sharegpt", "bad_chat", "first turn after the system prompt is assistant"),
    (_sg(("system", "s"), ("gpt", "hi"), ("human", "q"), ("gpt", "a")), "sharegpt", "bad_chat", "first turn after"),
    (_sg(("human", "q1"), ("human", "q2"), ("gpt", "a")), "sharegpt", "bad_chat", "turns 0 and 1 are both user"),
    (_sg(("human", "q"), ("gpt", "a1"), ("gpt", "a2")), "sharegpt", "bad_chat", "turns 1 and 2 are both assistant"),
    (_sg(("human", "q"), ("gpt", "a"), ("human", "q2")), "sharegpt", "bad_chat", "ends with a user turn"),
    (_sg(("human", "q"), ("system", "s"), ("gpt", "a")), "sharegpt", "bad_chat", "turn 1 is a system turn"),
    (_sg(("human", " \n"), ("gpt", "a")), "sharegpt", "empty", r"turn 0 \(user\) is empty"),
    (_sg(("human", "q"), ("gpt", "\t")), "sharegpt", "empty", r"turn 1 \(assistant\) is empty"),
    ({"instruction": "q", "output": "a", "history": [["", "a0"]]}, "alpaca", "empty", r"turn 0 \(user\) is empty"),
    (_sg(("human", "q"), ("observation", "r"), ("gpt", "a")), "sharegpt", "bad_chat", "tool turn after a user turn"),
    (_sg(("human", "q"), ("function_call", "f()"), ("observation", "r")), "sharegpt", "bad_chat", "ends with a tool"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                   {"role": "system", "content": "late"}]}, "openai", "bad_chat", "turn 2 is a system turn"),
])
def test_turn_order_rules(rec, layout, reason, detail):
    with pytest.raises(ChatError, match=detail) as e:
        extract_messages(rec, layout)
    assert e.value.reason == reason


def test_turn_order_accepts_tool_calls_and_a_default_system():
    rec = _sg(("human", "q"), ("function_call", "f()"), ("observation", "r1"), ("observation", "r2"), ("gpt", "a"))
    msgs = extract_messages(rec, "sharegpt", system="s")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "tool", "assistant"]


def test_chat_tokenization_matches_encode_chat(qwen_tokenizer_dir):
    from steel.data.tokenize import encode_documents
    from steel.tokenizer.engine import load_encoder

    enc = load_encoder(qwen_tokenizer_dir)
    msgs = extract_messages({"instruction": "解释 EOS 是什么", "input": "上下文", "output": "It is text.\n\n"},
                            "alpaca", system="你是 Steel")
    plain = "naïve <|endoftext|> stays text"
    tokens, lengths = encode_documents(enc, [render_chatml(msgs), plain], [True, False])
    want_chat = enc.encode_chat(msgs) + [enc.eos_id]
    want_text = enc.encode(plain) + [enc.eos_id]
    assert lengths.tolist() == [len(want_chat), len(want_text)]
    assert tokens.tolist() == want_chat + want_text
    assert enc.special_ids["<|endoftext|>"] not in want_text[:-1]  # the literal marker is ordinary text
