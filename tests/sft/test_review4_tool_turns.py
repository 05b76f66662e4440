"""Tool turns are rendered as the tokenizer's chat template renders them, or the run is refused."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from steel.config import ConfigError, from_dict
from steel.sft import data as D

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
# Qwen2.5's way with tool results: a user turn wrapping them in <tool_response> (the rest is ChatML)
QWEN25_TOOLS = CHATML.replace(
    "{{ '<|im_start|>' + m['role']",
    "{% if m['role'] == 'tool' %}{{ '<|im_start|>user\\n<tool_response>\\n' + m['content'] + "
    "'\\n</tool_response><|im_end|>\\n' }}{% else %}{{ '<|im_start|>' + m['role']",
).replace("'<|im_end|>\\n' }}{% endfor %}", "'<|im_end|>\\n' }}{% endif %}{% endfor %}")

TOOL_CONV = [{"role": "user", "content": "几点了？"}, {"role": "assistant", "content": "clock()"},
             {"role": "tool", "content": "10:00"}, {"role": "assistant", "content": "十点。"}]
PLAIN_CONV = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]


def _cfg(tmp_path, convs) -> D.SftDataConfig:
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in convs),
                                      encoding="utf-8")
    return from_dict(D.SftDataConfig, {"root": str(tmp_path), "seq_len": 128, "packing": False,
                                       "datasets": [{"name": "calls", "path": ["m.jsonl"], "chat_layout": "openai"}]})


def _tok(tiny_tokenizer_dir, template):
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    tok.chat_template = template
    return tok


def test_tool_turns_under_a_template_that_renders_them_otherwise_are_refused(tmp_path, tiny_tokenizer_dir):
    tok = _tok(tiny_tokenizer_dir, QWEN25_TOOLS)
    assert "<tool_response>" in tok.apply_chat_template(TOOL_CONV, tokenize=False)  # the template is as meant
    # They were trained as `<|im_start|>tool\n10:00<|im_end|>`, which inference with this template never shows.
    with pytest.raises(ConfigError) as e:
        D.build_sft_rows(_cfg(tmp_path, [TOOL_CONV, PLAIN_CONV]), tok, {})
    msg = str(e.value)
    assert msg.startswith(f"tokenizer: the chat template of {tok.name_or_path} renders a conversation with a tool turn")
    assert msg.endswith("(conversations with tool turns: calls: 1)")


def test_without_tool_turns_that_template_is_used(tmp_path, tiny_tokenizer_dir):
    tok = _tok(tiny_tokenizer_dir, QWEN25_TOOLS)
    ids, _ = D.build_sft_rows(_cfg(tmp_path, [PLAIN_CONV]), tok, {})
    want = tok.apply_chat_template(PLAIN_CONV, tokenize=True, return_dict=False) + [tok.eos_token_id]
    assert ids[0, : len(want)].tolist() == want


def test_tool_turns_under_chatml_are_the_templates_tokens(tmp_path, tiny_tokenizer_dir):
    tok = _tok(tiny_tokenizer_dir, CHATML)
    ids, labels = D.build_sft_rows(_cfg(tmp_path, [TOOL_CONV]), tok, {})
    want = tok.apply_chat_template(TOOL_CONV, tokenize=True, return_dict=False) + [tok.eos_token_id]
    assert ids[0, : len(want)].tolist() == want
    # the tool result is prompt: only the two assistant turns are trained
    assert tok.decode([t for t in labels[0].tolist() if t != -100]) == "clock()<|im_end|>十点。<|im_end|>"
