"""`steel eval ppl --max-tokens N` with N above what the data has scores all it has: one line on stderr says so,
naming N and the tokens scored (the result's `tokens` was the only sign, and with configs/eval/ppl-1m.yaml's
1M a small data dir gave a figure over far fewer tokens than the protocol's without a word). A N the data
covers, or no --max-tokens, prints nothing; a max_tokens from --config is named as the file's field."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_ppl_contamination import _data_dir, _fingerprint
from transformers import AutoTokenizer

from steel.cli import main as steel_main


def _ppl(tmp_path, model_dir, *extra) -> tuple[dict, list[str]]:
    import sys

    vocab = len(AutoTokenizer.from_pretrained(str(model_dir)))
    d = tmp_path / "data"
    if not d.exists():
        _data_dir(d, {"a": np.arange(40) % (vocab - 3) + 3}, vocab, fp=_fingerprint(model_dir))
    out = tmp_path / "ppl.json"
    err = []
    real = sys.stderr.write
    sys.stderr.write = lambda s: err.append(s) or real(s)  # (capsys also holds the progress bar's lines)
    try:
        assert steel_main(["eval", "ppl", "--model", str(model_dir), "--data", str(d), "--seq-len", "16",
                           "--device", "cpu", "--out", str(out), *extra]) == 0
    finally:
        sys.stderr.write = real
    notes = [line for line in "".join(err).splitlines() if "--max-tokens" in line or "max_tokens" in line]
    return json.loads(out.read_text()), notes


def test_more_than_the_data_has_is_said(tmp_path, tiny_llama_dir):
    res, notes = _ppl(tmp_path, tiny_llama_dir, "--max-tokens", "1000")
    assert res["tokens"] == res["available_tokens"] == 15 + 15 + 7  # windows of 16 over 40 tokens
    assert notes == [f"steel eval ppl: --max-tokens 1000 is more than {tmp_path / 'data'} has to score in "
                     "windows of 16 tokens: all its 37 were scored"]


@pytest.mark.parametrize("extra", [["--max-tokens", "37"], ["--max-tokens", "20"], []])
def test_no_note_where_the_data_covers_it(tmp_path, tiny_llama_dir, extra):
    res, notes = _ppl(tmp_path, tiny_llama_dir, *extra)
    assert res["tokens"] == (int(extra[1]) if extra else 37)
    assert notes == []


def test_a_config_max_tokens_is_named_as_its_field(tmp_path, tiny_llama_dir):
    cfg = tmp_path / "ppl.yaml"
    cfg.write_text("max_tokens: 500\n", encoding="utf-8")
    res, notes = _ppl(tmp_path, tiny_llama_dir, "--config", str(cfg))
    assert res["tokens"] == 37
    assert notes == [f"steel eval ppl: max_tokens: 500 ({cfg}) is more than {tmp_path / 'data'} has to score in "
                     "windows of 16 tokens: all its 37 were scored"]


def test_help_says_all_the_data_has_when_fewer(capsys):
    with pytest.raises(SystemExit):
        steel_main(["eval", "ppl", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "all the data has, when that is fewer" in text
