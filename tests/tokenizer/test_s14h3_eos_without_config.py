"""A tokenizer directory without tokenizer_config.json (tokenizer.json alone, as `tokenizers` saves it) ends
documents with <|endoftext|>, Qwen's pretraining separator, not with another special token: the fallback of
`Encoder._eos_id`, which every directory steel builds bypasses (their config names the EOS)."""

from __future__ import annotations

import shutil

from steel.tokenizer.engine import load_encoder
from steel.tokenizer.qwen import build_qwen_tokenizer


def test_eos_defaults_to_endoftext(tmp_path, small_ranks_file):
    full = build_qwen_tokenizer(tmp_path / "full", ranks_path=small_ranks_file)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(full / "tokenizer.json", bare / "tokenizer.json")
    for engine in ("hf", None):
        enc = load_encoder(bare, engine=engine)
        # The small rank file has 3,000 ranks: <|endoftext|>, <|im_start|>, <|im_end|> are 3000, 3001, 3002.
        assert enc.eos_id == 3000 == enc.special_ids["<|endoftext|>"]
