"""Real text for tokenizer tests (read-only from ../shared/data and the Python stdlib) and a tiny rank file."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

# Strings where byte-level BPE implementations tend to disagree.
TRICKY = [
    "",
    " ",
    "hello world",
    "I'LL say it's DON'T we'Ve",
    "   leading and trailing   ",
    "tabs\tand\t\tmore\t",
    "line\r\nwindows\r\n\r\nend\r",
    "\n\n\n   \n\t\n",
    "digits 1234567890 ０１２３ ٣٤٥ ⅻ 3.14159e-10",
    "emoji 😀👍🏽 👨‍👩‍👧‍👦 🇨🇳🇺🇸 ❤️",
    "mixed 中文English日本語한국어Русский عربي हिन्दी ไทย",
    "全角　空格\u3000\u3000和 nbsp\u00a0\u00a0x\u2028y\u2029z\u0085w\x0b\x0c",
    "combining e\u0301 a\u0300\u0301 \u200b zero width \ufeff bom",
    "special strings <|endoftext|> <|im_start|>user\nhi<|im_end|> <|endoftext|><|endoftext|>",
    "<|endoftext|>",
    "code:\n    def f(x):\n        return x**2  # sq\n\n\nclass A:\n\tpass\n",
    "punctuation!!! ??? ... ——「引号」《书名》、，。；：",
    "x" * 3000,
    "啊" * 500 + " " * 100 + "\n" * 50,
    "😀" * 200,
]


def _zst_docs(path: Path, limit: int) -> list[str]:
    import zstandard

    docs = []
    with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as z:
        for line in io.TextIOWrapper(z, encoding="utf-8"):
            docs.append(json.loads(line)["text"])
            if len(docs) == limit:
                break
    return docs


def _shared(kind: str, per_file: int) -> list[str]:
    files = sorted((SHARED_DATA / kind).glob("*.jsonl.zst"))
    # The shared data sits beside every checkout and in CI: its absence is a broken setup, not a skip.
    assert files, f"shared data not found under {SHARED_DATA / kind} (expected ../shared/data beside the repo)"
    return [d for f in files for d in _zst_docs(f, per_file)]


@pytest.fixture(scope="session")
def qwen_hf(qwen_tokenizer_dir):
    """The Qwen directory loaded as a transformers fast tokenizer (shared: loading costs ~1 s)."""
    from steel.tokenizer import load_tokenizer

    return load_tokenizer(qwen_tokenizer_dir)


@pytest.fixture(scope="session")
def tricky_strings() -> list[str]:
    return list(TRICKY)


@pytest.fixture(scope="session")
def real_texts() -> dict[str, list[str]]:
    """A few hundred real documents per kind: Chinese, English (shared data) and code (stdlib sources)."""
    stdlib = Path(os.__file__).parent
    code = [p.read_text(encoding="utf-8") for p in sorted(stdlib.glob("*.py"))[:40]]
    return {"zh": _shared("pretrain_zh", 40), "en": _shared("pretrain_en", 25), "code": code}


@pytest.fixture(scope="session")
def small_ranks_file(tmp_path_factory) -> Path:
    """Qwen's first 3,000 ranks (the 256 bytes and the earliest merges): a valid small BPE vocabulary.

    With few long tokens, most words are built merge by merge, which exercises merge ORDER far more
    than the full vocabulary, where most pre-tokens are a single vocabulary entry.
    """
    from steel.tokenizer.qwen import find_qwen_ranks

    path = tmp_path_factory.mktemp("small_ranks") / "small.tiktoken"
    with open(find_qwen_ranks(), "rb") as src, open(path, "wb") as dst:
        dst.writelines(line for _, line in zip(range(3000), src))
    return path
