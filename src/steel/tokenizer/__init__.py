"""Tokenizers: Qwen's vocabulary rebuilt offline (`qwen`), BPE training (`train`), fast encoders (`engine`).

A tokenizer directory is a transformers fast-tokenizer directory (`tokenizer.json`,
`tokenizer_config.json` with a ChatML chat template); `AutoTokenizer.from_pretrained(dir)` loads it.
When it also carries a tiktoken rank file (`qwen.tiktoken`), `steel.tokenizer.engine.load_encoder`
encodes with tiktoken, otherwise with HF `tokenizers`; both give the same ids.
"""

from __future__ import annotations

from pathlib import Path

from steel.cli import UserError


def load_tokenizer(path: str | Path):
    """The tokenizer directory `path` as a `transformers.PreTrainedTokenizerFast`."""
    from transformers import PreTrainedTokenizerFast

    from steel.tokenizer.engine import not_a_tokenizer_dir

    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise UserError(f"{path}: {not_a_tokenizer_dir(path)}; build one with `steel tokenizer qwen {path}`")
    return PreTrainedTokenizerFast.from_pretrained(str(path))
