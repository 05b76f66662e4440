"""Exporting an export again with a larger tokenizer (`steel export EXPORT OUT --tokenizer DIR`: Qwen's with tool
tokens added after its 151,646 ids, in the rows that were padding) lists only the rows past the NEW tokenizer as
bad_words_ids (review VI of session 16).

Found: the first export's list [[n], ..., [V-1]] was kept but for ids past the new tokenizer, so its rows between
the old and the new tokenizer (the added tokens, which have text now) stayed banned: HF's generate could never
write them. An earlier export's entries are the run of single ids it put last, ending at the last row; a source's
own entries before them stay (test_s16i_export_hf_generate_past_tokenizer's second test).
"""

from __future__ import annotations

import json

from steel.cli import main as steel_main


def test_a_larger_tokenizer_unbans_its_new_ids(tmp_path, tiny_tokenizer_dir):
    from tiny_models import build_tiny_llama
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    n, vocab = len(tok), len(tok) + 40
    src = tmp_path / "src"
    model = build_tiny_llama(vocab)
    model.generation_config.bad_words_ids = [[5], [40, 41]]  # the source's own
    model.save_pretrained(str(src))
    tok.save_pretrained(str(src))
    first = tmp_path / "first"
    assert steel_main(["export", str(src), str(first)]) == 0
    listed = json.loads((first / "generation_config.json").read_text(encoding="utf-8"))["bad_words_ids"]
    assert listed == [[5], [40, 41]] + [[i] for i in range(n, vocab)]

    tok.add_special_tokens({"additional_special_tokens": ["<tool_call>", "</tool_call>", "<tool_response>"]})
    bigger = tmp_path / "bigger"
    tok.save_pretrained(str(bigger))
    assert len(tok) == n + 3
    again = tmp_path / "again"
    assert steel_main(["export", str(first), str(again), "--tokenizer", str(bigger)]) == 0
    listed = json.loads((again / "generation_config.json").read_text(encoding="utf-8"))["bad_words_ids"]
    assert listed == [[5], [40, 41]] + [[i] for i in range(n + 3, vocab)]
