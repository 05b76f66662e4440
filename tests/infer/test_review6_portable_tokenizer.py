"""`steel export` (and an SFT run's tokenizer/) write a tokenizer_config.json older transformers and tools that
read only that file can load: transformers 5's save_pretrained names `tokenizer_class: TokenizersBackend`, a
class transformers 4 does not have, and keeps the chat template only in chat_template.jinja."""

from __future__ import annotations

import json

import torch

from steel.cli import main as steel


def test_export_tokenizer_config_names_a_portable_class_and_embeds_the_template(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from steel.model import build_model, load_model_config

    torch.manual_seed(0)
    src, out = tmp_path / "src", tmp_path / "hf"
    build_model(load_model_config("tiny")).save_pretrained(str(src))
    AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir)).save_pretrained(str(src))  # TokenizersBackend
    assert json.loads((src / "tokenizer_config.json").read_text())["tokenizer_class"] == "TokenizersBackend"
    assert steel(["export", str(src), str(out)]) == 0
    cfg = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    template = (out / "chat_template.jinja").read_text(encoding="utf-8")
    assert cfg["chat_template"] == template and "<|im_start|>" in template
    # the class named loads the same tokenizer as transformers' own pick
    a, b = PreTrainedTokenizerFast.from_pretrained(str(out)), AutoTokenizer.from_pretrained(str(out))
    msgs = [{"role": "user", "content": "你好, world"}]
    assert a.apply_chat_template(msgs, tokenize=False) == b.apply_chat_template(msgs, tokenize=False)
    assert a("你好, world")["input_ids"] == b("你好, world")["input_ids"]
