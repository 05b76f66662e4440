"""`steel eval mc --mode generate` on an export with a long `bad_words_ids` list (its rows past the tokenizer: 23,936
ids for a 128k tokenizer in Qwen's 151,936 rows, 145,936 for a 6k tokenizer of one's own) does not copy that list
at every generate call (review VI of session 16).

Passing `bad_words_ids=None` to generate (50402e2) kept HF from building its bias vector, but HF's
`_prepare_generation_config` still deep-copies the model's whole generation config, list included, at every call
(`self.generation_config.to_dict()`): 0.43-0.57 s per call for 145,936 ids on a loaded 2-core CPU
(bench/export_suppress_tokens.py), once per batch of questions. The list is set aside for the loop (TokensOnly masks those rows) and put back after.
"""

from __future__ import annotations

import pytest
import torch

from steel.eval import mc


def test_generate_mode_does_not_copy_the_list_at_each_call_and_puts_it_back(tiny_llama_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    msgs = [[{"role": "user", "content": f"以下是单项选择题 {q}"}] for q in ("ABCD", "DCBA", "AB")]
    want = mc.predict_generate_mode(model, tok, msgs, 6, 1)  # (no list: the reference replies)
    listed = [[7], [40, 41]]
    model.generation_config.bad_words_ids = listed
    copied = []
    to_dict = GenerationConfig.to_dict

    def recording(self):
        d = to_dict(self)
        copied.append(d.get("bad_words_ids"))
        return d

    monkeypatch.setattr(GenerationConfig, "to_dict", recording)
    assert mc.predict_generate_mode(model, tok, msgs, 6, 1) == want  # still plain greedy
    assert len(copied) >= 3  # (one generate per question: HF's copies were seen)
    assert all(c is None for c in copied), copied
    assert model.generation_config.bad_words_ids == listed  # the caller's model is as it was

    def fails(*args, **kwargs):
        assert model.generation_config.bad_words_ids is None and not torch.is_grad_enabled()
        raise RuntimeError("a generate that fails")

    monkeypatch.setattr(model, "generate", fails)
    with pytest.raises(RuntimeError, match="a generate that fails"):
        mc.predict_generate_mode(model, tok, msgs, 6, 1)
    assert model.generation_config.bad_words_ids == listed
