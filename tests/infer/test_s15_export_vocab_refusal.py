"""`steel export` refuses a tokenizer with more tokens than the model has embedding rows (an id the tokenizer
emits would index past the embeddings of the exported model): the mutation audit's one open gap (session 15)."""

from __future__ import annotations

import pytest
from tiny_models import build_tiny_llama
from transformers import AutoTokenizer

from steel.cli import main as steel_main


@pytest.mark.parametrize("short", [1, 0])
def test_export_refuses_a_tokenizer_larger_than_the_vocab(tmp_path, tiny_tokenizer_dir, short, capsys):
    n = len(AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir)))  # 256 bytes + 2 merges + 3 specials
    assert n == 261
    src = tmp_path / "src"
    build_tiny_llama(vocab_size=n - short).save_pretrained(str(src))
    AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir)).save_pretrained(str(src))
    out = tmp_path / "export"
    rc = steel_main(["export", str(src), str(out)])
    err = capsys.readouterr().err
    if short:
        assert rc != 0
        assert f"tokenizer has {n} tokens but the model's vocab_size is {n - 1}" in err
        assert not (out / "config.json").exists()
    else:  # exactly as many rows as tokens: the boundary is allowed
        assert rc == 0, err
        assert (out / "config.json").exists()
