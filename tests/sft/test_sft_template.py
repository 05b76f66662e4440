"""SFT rows follow the tokenizer's chat template: its default system turn is added, other formats refused."""

from __future__ import annotations

import json
import logging

import pytest
from transformers import AutoTokenizer

from steel.config import ConfigError, from_dict
from steel.sft import data as D
from steel.tokenizer.qwen import chatml_template

DEFAULT = "You are a helpful assistant."


def _rows_cfg(tmp_path) -> D.SftDataConfig:
    recs = [{"instruction": "你好", "input": "", "output": "你好！"},
            {"instruction": "1+1?", "input": "", "output": "2", "system": "Be brief."}]
    (tmp_path / "a.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    return from_dict(D.SftDataConfig, {"root": str(tmp_path), "seq_len": 96, "packing": False,
                                       "datasets": [{"name": "a", "path": ["a.json"]}]})


@pytest.fixture(scope="module")
def qwen_default_dir(qwen_tokenizer_dir, tmp_path_factory):
    # what `steel tokenizer qwen OUT --default-system "You are a helpful assistant."` writes
    from steel.tokenizer.qwen import build_qwen_tokenizer

    return build_qwen_tokenizer(tmp_path_factory.mktemp("qwen_default_system"), qwen_tokenizer_dir / "qwen.tiktoken",
                                default_system=DEFAULT)


def test_default_system_of_the_template_is_trained(tmp_path, qwen_default_dir, caplog):
    # SFT hard-coded ChatML without a system turn, while `steel chat` prompts opened with the template's
    # default one: the model was prompted in a form it never saw in training.
    tok = AutoTokenizer.from_pretrained(str(qwen_default_dir))
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    stats = {}
    with caplog.at_level(logging.INFO, logger="steel"):
        ids, labels = D.build_sft_rows(_rows_cfg(tmp_path), tok, stats)
    # Independent reference: the tokenizer's own chat template, tokenized by transformers.
    convs = [[{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}],
             [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"},
              {"role": "assistant", "content": "2"}]]
    want = [tok.apply_chat_template(c, tokenize=True, return_dict=False) + [eos] for c in convs]
    rows = [r[: len(w)] for r, w in zip(ids.tolist(), want)]
    assert sorted(rows) == sorted(want) and len(rows) == 2
    assert want[0][:6] == tok.encode("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")[:6]
    # the inserted system turn is prompt: only the answers and their <|im_end|> are trained
    trained = sorted(tok.decode([t for t in row if t != -100]) for row in labels.tolist())
    assert trained == ["2<|im_end|>", "你好！<|im_end|>"]
    assert stats["default_system"] == {"content": DEFAULT, "conversations": 1}
    assert f"adds the system message {DEFAULT!r} to conversations without one; added to 1 of 2" in caplog.text


def test_plain_chatml_template_adds_nothing(tmp_path, tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    assert D.template_default_system(tok) is None
    stats = {}
    ids, _ = D.build_sft_rows(_rows_cfg(tmp_path), tok, stats)
    ct = D.ChatTokenizer(tok)
    first = [m for _, m in D.build_conversations(_rows_cfg(tmp_path), {})]
    assert sorted(r[: len(e)] for r, e in zip(ids.tolist(), (ct.encode(c)[0] for c in first))) == sorted(
        ct.encode(c)[0] for c in first)
    assert "default_system" not in stats
    # the template of `steel tokenizer qwen --default-system` on the same vocabulary: its text comes back
    tok.chat_template = chatml_template("Du bist hilfreich.")
    assert D.template_default_system(tok) == "Du bist hilfreich."


CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.mark.parametrize("template, found", [
    # Qwen3-style: the generation prompt opens an empty think block SFT never trains
    (CHATML.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n'"),
     "renders a prompt for a reply (add_generation_prompt) as '<|im_start|>system\\nBe brief.<|im_end|>\\n"
     "<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n<think>"),
    # not ChatML at all
    ("{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
     "renders a conversation without a system message as '[INST] Hi [/INST][INST] Hello! [/INST]', SFT as "
     "'<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello!<|im_end|>\\n'"),
    # ChatML with other role names
    (CHATML.replace("m['role']", "('human' if m['role'] == 'user' else m['role'])"),
     "renders a conversation without a system message as '<|im_start|>human\\nHi"),
    # ChatML that refuses system messages (as Gemma's template does)
    (CHATML.replace("{% for m in messages %}", "{% for m in messages %}{% if m['role'] == 'system' %}"
                    "{{ raise_exception('System role not supported') }}{% endif %}"),
     "fails on a probe conversation (TemplateError: System role not supported)"),
])
def test_other_chat_templates_are_refused(tmp_path, tiny_tokenizer_dir, template, found):
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    tok.chat_template = template
    with pytest.raises(ConfigError) as e:
        D.build_sft_rows(_rows_cfg(tmp_path), tok, {})
    msg = str(e.value)
    assert msg.startswith(f"tokenizer: the chat template of {tok.name_or_path} ")
    assert found in msg and "use a tokenizer with a ChatML chat template" in msg
