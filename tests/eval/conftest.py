"""Fixtures for tests/eval: the tiny tokenizer and model of tiny_models.py."""

from tiny_models import (  # noqa: F401
    position_log,
    short_llama_dir,
    tiny_llama_dir,
    tiny_tokenizer_dir,
)
