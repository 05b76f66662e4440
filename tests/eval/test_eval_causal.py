"""A model whose FFN mixes positions (Steel soft_moe_v3, the default steel-1b) reads later tokens: its
perplexity and its multi-token continuation scores are teacher-forced and optimistic. `eval ppl` and
`eval mc` warn once and say `"causal": false`; a causal model gets `"causal": true` and no warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from test_mc import make_ceval_dir
from test_ppl_contamination import _data_dir
from tiny_models import build_tiny_llama

from steel.eval import mc
from steel.eval.ppl import perplexity
from steel.model import SteelCausalityWarning


def _v3_model(vocab_size: int):
    from steel.model import build_model, load_model_config

    cfg = load_model_config("tiny")
    assert cfg.ffn_type == "soft_moe_v3"
    cfg.vocab_size = vocab_size
    torch.manual_seed(0)
    return build_model(cfg).eval()


def _eval_warnings(fn):
    """fn()'s result and the SteelCausalityWarnings it raised."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in seen if issubclass(w.category, SteelCausalityWarning)]


def test_ppl_of_a_position_mixing_model_warns_and_says_not_causal(tmp_path):
    d = _data_dir(tmp_path / "data", {"a": np.arange(100) % 300, "b": np.arange(50) % 7}, 300)
    res, said = _eval_warnings(lambda: perplexity(_v3_model(300), d, 16, 4, advance=lambda n: None))
    assert res["causal"] is False
    assert len(said) == 1 and "ffn_type='soft_moe_v3'" in said[0] and "optimistic" in said[0]
    res, said = _eval_warnings(lambda: perplexity(build_tiny_llama(300), d, 16, 4, advance=lambda n: None))
    assert res["causal"] is True and said == []


@pytest.mark.parametrize("scoring", ["letter", "continuation"])
def test_mc_of_a_position_mixing_model(tmp_path, tiny_tokenizer_dir, scoring):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    # In the tiny vocabulary " A"/" B" are one token and " C"/" D" two: the latter are scored teacher-forced.
    assert len(tok.encode(" C", add_special_tokens=False)) == 2
    opts = mc.McOptions(task="ceval", data=make_ceval_dir(tmp_path / "ceval"), shots=0, scoring=scoring,
                        subjects=["high_school_history"], limit=2)
    res, said = _eval_warnings(lambda: mc.run_mc(_v3_model(len(tok)), tok, opts))
    assert res["causal"] is False
    if scoring == "continuation":
        assert len(said) == 1 and "2 question(s) have a continuation of several tokens" in said[0]
    else:
        assert said == []  # the next-token logits at the prompt's end read nothing after it
    res, said = _eval_warnings(lambda: mc.run_mc(build_tiny_llama(len(tok)), tok, opts))
    assert res["causal"] is True and said == []
