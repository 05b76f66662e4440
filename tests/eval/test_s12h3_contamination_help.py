"""`steel eval contamination --help` says where a chunk dir's tokenizer comes from without --tokenizer (its own
tokenizer/, else the one it was prepared with: README, "steel eval contamination"); it said "default: none", and
listed only json/jsonl/jsonl.zst inputs where .txt and gzip are read too."""

from __future__ import annotations

import re

import pytest

from steel.cli import main as steel_main


def test_contamination_help_tells_the_default_tokenizer_and_the_inputs(capsys):
    with pytest.raises(SystemExit):
        steel_main(["eval", "contamination", "--help"])
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "default: none" not in text
    assert "default: each chunk dir's tokenizer/, else the tokenizer it was prepared with" in text
    assert ".txt" in text and "gzip" in text
