"""An export's (and an SFT run's tokenizer/) tokenizer_config.json names additional special tokens as transformers 4
reads them: transformers 5 writes them as a list, `extra_special_tokens`, which transformers 4 (4.57.1, checked by
hand) reads as a dict of named tokens, so the load failed (`'list' object has no attribute 'keys'`, reported as
"requires the protobuf library") for any tokenizer with such tokens (a ChatML one with <|im_start|>/<|im_end|>).
They are written as `additional_special_tokens`, which transformers 5 reads into the same tokens.

Reference: transformers 4.57's reading of the config, by hand (`t4_special_tokens`), and transformers 5's load of
the source tokenizer."""

from __future__ import annotations

import json

import torch
from transformers import AutoTokenizer

from steel.cli import main as steel_main
from steel.tokenizer.qwen import make_tokenizer_config_portable

NAMED = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def t4_special_tokens(cfg: dict) -> list[str]:
    """The special tokens transformers 4.57 takes from a tokenizer_config.json (tokenization_utils_base): the named
    ones, `additional_special_tokens` (a list), and `extra_special_tokens` (default {}), which it passes to
    `_set_model_specific_special_tokens` as {name: token} (`.keys()`, `.items()`): a list raises there."""
    extra = cfg.get("extra_special_tokens", {})
    if not isinstance(extra, dict):
        raise AttributeError(f"'{type(extra).__name__}' object has no attribute 'keys'")
    named = [cfg[k] for k in NAMED if isinstance(cfg.get(k), str)]
    return list(dict.fromkeys(named + list(cfg.get("additional_special_tokens", [])) + list(extra.values())))


def _tokens_and_ids(d) -> tuple[list[str], list[int], list[str]]:
    tok = AutoTokenizer.from_pretrained(str(d))
    return tok.all_special_tokens, tok.all_special_ids, [str(t) for t in tok.extra_special_tokens]


def test_stock_export_and_its_export_load_under_transformers_4_with_the_same_special_tokens(tmp_path,
                                                                                          tiny_tokenizer_dir):
    from steel.model import SteelConfig, SteelForCausalLM

    src, out, again = tmp_path / "src", tmp_path / "hf", tmp_path / "hf2"
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    assert [str(t) for t in tok.extra_special_tokens] == ["<|im_start|>", "<|im_end|>"]
    torch.manual_seed(0)
    cfg = SteelConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, ffn_type="swiglu", eos_token_id=tok.eos_token_id)
    SteelForCausalLM(cfg).save_pretrained(str(src))
    tok.save_pretrained(str(src))
    assert isinstance(json.loads((src / "tokenizer_config.json").read_text())["extra_special_tokens"], list)
    assert steel_main(["export", str(src), str(out), "--stock"]) == 0
    assert steel_main(["export", str(out), str(again)]) == 0  # an export of the export: saved by transformers 5 again
    want = _tokens_and_ids(tiny_tokenizer_dir)
    assert want == (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], [258, 259, 260], ["<|im_start|>", "<|im_end|>"])
    for d in (out, again):
        written = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
        assert t4_special_tokens(written) == want[0], d
        # transformers 4 takes the ids from tokenizer.json's added tokens: each one special, at transformers 5's id
        added = {t["content"]: t for t in json.loads((d / "tokenizer.json").read_text())["added_tokens"]}
        assert [added[t]["id"] for t in want[0]] == want[1] and all(added[t]["special"] for t in want[0])
        assert _tokens_and_ids(d) == want, d


def test_the_list_joins_additional_special_tokens_and_a_dict_stays(tmp_path):
    d = tmp_path / "tok"
    d.mkdir()
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<e>", "additional_special_tokens": ["<a>"],
           "extra_special_tokens": ["<a>", "<b>"]}
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    make_tokenizer_config_portable(d, None)
    got = json.loads((d / "tokenizer_config.json").read_text())
    assert got == {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<e>",
                   "additional_special_tokens": ["<a>", "<b>"]}
    assert t4_special_tokens(got) == ["<e>", "<a>", "<b>"]
    named = cfg | {"extra_special_tokens": {"image_token": "<img>"}}  # named tokens: what transformers 4 reads too
    (d / "tokenizer_config.json").write_text(json.dumps(named))
    make_tokenizer_config_portable(d, None)
    assert json.loads((d / "tokenizer_config.json").read_text()) == named
