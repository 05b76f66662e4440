"""Fixtures for tests/eval: the tiny tokenizer and model of tiny_models.py."""

from tiny_models import tiny_llama_dir, tiny_tokenizer_dir  # noqa: F401
