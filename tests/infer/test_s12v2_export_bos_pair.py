"""The export of a model Steel trained from the start drops the tokenizer's BOS before each text, and only that: a
tokenizer whose BOS is also its EOS (one `<|endoftext|>` put around a text) kept the EOS after a single text but
lost the one after the first text of a pair (every special token before a later text was taken for a BOS). The
reference is the tokenizer's plain ids, joined by hand as its template says."""

from __future__ import annotations

import json

from test_s11_eval_ppl_bos_lineage import _run
from test_s12h3_export_bos import _steel_model
from tiny_models import build_byte_tokenizer
from transformers import AutoTokenizer

from steel.cli import main as steel_main


def test_a_bos_that_is_also_the_eos_is_dropped_only_before_each_text(tmp_path, capsys):
    from tokenizers import processors

    tok_dir = tmp_path / "tok"
    tok = build_byte_tokenizer(tok_dir)
    x = tok.convert_tokens_to_ids("<|endoftext|>")
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A <|endoftext|>", pair="<|endoftext|> $A <|endoftext|> <|endoftext|>:1 $B:1 "
        "<|endoftext|>:1", special_tokens=[("<|endoftext|>", x)])
    tok.bos_token = "<|endoftext|>"
    tok.save_pretrained(str(tok_dir))
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    a, b = tok.encode("AB", add_special_tokens=False), tok.encode(" B", add_special_tokens=False)
    assert tok("AB", " B")["input_ids"] == [x, *a, x, x, *b, x]  # the source tokenizer, as built

    pre = _run(tmp_path / "pre", _steel_model(len(tok), x), tok_dir, {"model": {"config": "tiny"}, "data": {"dirs": []}})
    out = tmp_path / "hf"
    assert steel_main(["export", str(pre), str(out)]) == 0
    assert "puts no <|endoftext|> first either" in capsys.readouterr().err
    assert json.loads((out / "steel_export.json").read_text())["trained_without_bos"] is True
    new = AutoTokenizer.from_pretrained(str(out), trust_remote_code=True)
    assert new("AB")["input_ids"] == [*a, x]
    assert new("AB", " B")["input_ids"] == [*a, x, *b, x]
