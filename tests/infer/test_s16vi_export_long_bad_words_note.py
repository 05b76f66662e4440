"""`steel export` of a model with many rows past its tokenizer (a vocab_size left at Qwen's 151,936 over a tokenizer
of one's own) says what the bad_words_ids list it writes costs (review VI of session 16).

Found: the list is right (HF's generate never picks those ids, greedy as `steel generate`), but at a 145,936-id gap
generation_config.json is 3.8 MB, loading it takes seconds, and every HF generate call copies the list (0.43-0.57
s) and builds its mask from it (0.6 s; bench/export_suppress_tokens.py) - silently. Qwen's own padding (290 rows)
stays without a note: the same bounds as `steel train`'s vocab warning (more than 1,024 rows and 10% of them).
"""

from __future__ import annotations

import json

from steel.cli import main as steel_main


def export_with(tmp_path, tok_dir, vocab_size: int, capsys) -> tuple[str, dict, int]:
    from tiny_models import build_tiny_llama
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    src, out = tmp_path / f"src{vocab_size}", tmp_path / f"out{vocab_size}"
    model = build_tiny_llama(vocab_size)
    model.save_pretrained(str(src))
    tok.save_pretrained(str(src))
    capsys.readouterr()
    assert steel_main(["export", str(src), str(out)]) == 0
    gen = json.loads((out / "generation_config.json").read_text(encoding="utf-8"))
    return capsys.readouterr().err, gen, len(tok)


def test_a_long_list_is_said_and_padding_is_not(tmp_path, tiny_tokenizer_dir, capsys):
    printed, gen, n = export_with(tmp_path, tiny_tokenizer_dir, 4096, capsys)
    gap = 4096 - n
    assert gen["bad_words_ids"] == [[i] for i in range(n, 4096)]  # (the list itself is unchanged)
    lines = [x for x in printed.splitlines() if "bad_words_ids" in x]
    assert len(lines) == 1, printed
    assert lines[0].startswith(
        f"steel: note: the model has {gap:,} rows past the tokenizer's {n:,} ids ({100 * gap / 4096:.0f}%): "
        f"generation_config.json lists them as bad_words_ids, so HF's generate never picks one, and HF copies "
        "that list and builds its mask from it at every generate call"), lines[0]
    assert "model.overrides.vocab_size" in lines[0]  # what to change at training time
    printed, gen, n = export_with(tmp_path, tiny_tokenizer_dir, n + 64, capsys)  # padding: a multiple of 64
    assert gen["bad_words_ids"] == [[i] for i in range(n, n + 64)]
    assert "bad_words_ids" not in printed, printed
