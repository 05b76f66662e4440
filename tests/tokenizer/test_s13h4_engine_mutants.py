"""Mutation audit (session 13, H4): the encoder's EOS comes from tokenizer_config.json when it names one."""

from __future__ import annotations

import json
import shutil

import pytest

from steel.tokenizer.engine import load_encoder


@pytest.mark.parametrize("eos", ["<|im_end|>", {"content": "<|im_end|>", "special": True}])
def test_eos_id_is_the_tokenizer_configs_eos_token(tmp_path, qwen_tokenizer_dir, eos):
    d = tmp_path / "tok"
    shutil.copytree(qwen_tokenizer_dir, d)
    cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["eos_token"] = eos
    (d / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    enc = load_encoder(d, num_threads=1)
    added = {t["content"]: t["id"] for t in json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]}
    assert enc.eos_id == added["<|im_end|>"] == 151645
    assert load_encoder(qwen_tokenizer_dir, num_threads=1).eos_id == added["<|endoftext|>"] == 151643
