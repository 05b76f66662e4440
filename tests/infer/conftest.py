"""Fixtures for tests/infer: the tiny tokenizer and model of tests/eval/tiny_models.py (test dirs are not packages)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

from tiny_models import (  # noqa: F401
    position_log,
    short_llama_dir,
    tiny_llama_dir,
    tiny_tokenizer_dir,
)
