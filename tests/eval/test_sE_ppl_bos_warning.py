"""`steel eval ppl` windows carry no BOS (prepared chunks hold none): a model whose tokenizer puts one before every
text (Llama, Mistral, Gemma) is scored on inputs unlike its training's, which is said, naming the token; a
tokenizer that adds nothing (Qwen's, Steel's) gets no such warning."""

from __future__ import annotations

import json
import warnings

import numpy as np
from test_ppl_contamination import _data_dir, _fingerprint
from tiny_models import build_metaspace_tokenizer, build_tiny_llama

from steel.cli import main as steel_main


def _ppl(tmp_path, tok_dir, model_dir, vocab):
    d = _data_dir(tmp_path / "data", {"a": np.arange(40) % (vocab - 3) + 3}, vocab, fp=_fingerprint(tok_dir))
    out = tmp_path / "ppl.json"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert steel_main(["eval", "ppl", "--model", str(model_dir), "--data", str(d), "--seq-len", "16",
                           "--device", "cpu", "--out", str(out)]) == 0
    return json.loads(out.read_text())["tokens"], [str(w.message) for w in seen if "BOS" in str(w.message)
                                                   or "before a text" in str(w.message)]


def test_a_bos_tokenizer_is_warned_about(tmp_path):
    model_dir = tmp_path / "llama"
    tok = build_metaspace_tokenizer(model_dir)
    assert tok("甲")["input_ids"][0] == tok.bos_token_id  # the reference: this tokenizer puts <s> first
    build_tiny_llama(len(tok)).save_pretrained(str(model_dir))
    tokens, warned = _ppl(tmp_path, model_dir, model_dir, len(tok))
    assert tokens == 15 + 15 + 7  # windows of 16 over 40 tokens; the warning changes no figure
    assert len(warned) == 1 and "['<s>']" in warned[0] and str(model_dir) in warned[0]


def test_a_tokenizer_without_bos_is_not_warned_about(tmp_path, tiny_llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    assert tok("x")["input_ids"] == tok("x", add_special_tokens=False)["input_ids"]  # adds nothing
    tokens, warned = _ppl(tmp_path, tiny_llama_dir, tiny_llama_dir, len(tok))
    assert tokens == 37 and warned == []
