"""The export of a model Steel trained from the start, with a Llama tokenizer (transformers 5 saves it as class
LlamaTokenizer, without add_bos_token/add_eos_token), says `add_bos_token: false` and `add_eos_token` as its
tokenizer.json appends: transformers 4's LlamaTokenizerFast (what many vLLM installs load) rebuilds the
post-processor from these two, defaulting to true and false, so the BOS taken out of tokenizer.json came back there
(and the EOS went; checked by hand with transformers 4.46.3). An export of that export keeps them (transformers 5
writes neither when it saves the tokenizer again). Reference: that rebuild, by hand, against transformers 5's ids."""

from __future__ import annotations

import json

from test_s11_eval_ppl_bos_lineage import _run
from test_s12h3_export_bos import _steel_model
from transformers import AutoTokenizer, LlamaTokenizer

from steel.cli import main as steel_main


def _rebuilt_by_flags(d, text: str) -> list[int]:
    """What transformers 4's LlamaTokenizerFast encodes: its post-processor made from the config's two flags."""
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(d), trust_remote_code=True)
    return ([tok.bos_token_id] if cfg.get("add_bos_token", True) else []) + tok.encode(text, add_special_tokens=False) \
        + ([tok.eos_token_id] if cfg.get("add_eos_token", False) else [])


def test_llama_tokenizer_flags_say_no_bos_and_the_eos(tmp_path, capsys):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "▁a": 4, "a": 5, "b": 6, "▁b": 7}
    tok_dir = tmp_path / "tok"
    LlamaTokenizer(vocab=vocab, merges=[("▁", "a"), ("▁", "b")], add_bos_token=True,
                   add_eos_token=True).save_pretrained(str(tok_dir))
    saved = json.loads((tok_dir / "tokenizer_config.json").read_text())
    assert saved["tokenizer_class"] == "LlamaTokenizer" and "add_bos_token" not in saved
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    plain = tok.encode("a b", add_special_tokens=False)
    assert plain == [4, 7] and tok("a b")["input_ids"] == [1, 4, 7, 2]  # the source: <s> first, </s> last

    pre = _run(tmp_path / "pre", _steel_model(len(tok), 2), tok_dir, {"model": {"config": "tiny"}, "data": {"dirs": []}})
    out, again = tmp_path / "hf", tmp_path / "hf2"
    assert steel_main(["export", str(pre), str(out), "--stock"]) == 0
    assert steel_main(["export", str(out), str(again)]) == 0
    assert "puts no <s> first either" in capsys.readouterr().err
    for d in (out, again):
        assert json.loads((d / "tokenizer_config.json").read_text())["tokenizer_class"] == "LlamaTokenizer"
        assert AutoTokenizer.from_pretrained(str(d), trust_remote_code=True)("a b")["input_ids"] == [4, 7, 2]
        assert _rebuilt_by_flags(d, "a b") == [4, 7, 2], d
