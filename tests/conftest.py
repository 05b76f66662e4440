"""Shared pytest fixtures. Keep each fixture small and documented; areas add theirs below."""

from __future__ import annotations

import pytest


# --- tokenizer ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def qwen_tokenizer_dir(tmp_path_factory):
    """Qwen's tokenizer (151,646 ids), built once per session by `steel.tokenizer.qwen` (~3 s).

    Needs dashscope's rank file (`pip install --no-deps dashscope`, done by scripts/setup.sh).
    """
    from steel.tokenizer.qwen import build_qwen_tokenizer

    return build_qwen_tokenizer(tmp_path_factory.mktemp("qwen_tokenizer"))


# --- paths -------------------------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh home directory for `~` (HOME set to it), with the working directory at tmp_path: where a `~`
    taken literally would have been looked for, or created."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home
