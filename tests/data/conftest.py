from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def enc(qwen_tokenizer_dir):
    """The Qwen encoder `steel data prepare` uses, one thread."""
    from steel.tokenizer.engine import load_encoder

    return load_encoder(qwen_tokenizer_dir, num_threads=1)
