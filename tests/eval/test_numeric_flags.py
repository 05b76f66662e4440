"""Out-of-range numbers for `steel eval mc|ppl`, `steel generate|chat` and the eval --config files are
one-line errors naming the flag or field (a negative --limit used to score all but |N| questions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from steel.cli import main as steel_main

CMMLU = Path(__file__).resolve().parents[3] / "shared" / "data" / "cmmlu"
MC = ["eval", "mc", "--task", "cmmlu", "--data", str(CMMLU), "--model", "/nonexistent-model"]
PPL = ["eval", "ppl", "--data", "/nonexistent-data", "--model", "/nonexistent-model"]
GEN = ["generate", "--model", "/nonexistent-model", "--prompt", "hi"]
CHAT = ["chat", "--model", "/nonexistent-model"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (MC + ["--limit", "-1"], "--limit: must be >= 1, got -1"),
        (MC + ["--limit", "-100"], "--limit: must be >= 1, got -100"),
        (MC + ["--limit", "0"], "--limit: must be >= 1, got 0"),
        (MC + ["--shots", "-1"], "--shots: must be in 0..5"),
        (MC + ["--batch-size", "-2"], "--batch-size: must be >= 1"),
        (MC + ["--max-new-tokens", "0"], "--max-new-tokens: must be >= 1"),
        (PPL + ["--max-tokens", "-5"], "--max-tokens: must be >= 1"),
        (PPL + ["--max-tokens", "0"], "--max-tokens: must be >= 1"),
        (PPL + ["--seq-len", "1"], "--seq-len: must be >= 2"),
        (PPL + ["--batch-size", "0"], "--batch-size: must be >= 1"),
        (GEN + ["--max-new-tokens", "0"], "--max-new-tokens: must be >= 1"),
        (GEN + ["--temperature", "-0.1"], "--temperature: must be >= 0"),
        (GEN + ["--temperature", "nan"], "--temperature: must be a finite number"),
        (GEN + ["--temperature", "inf"], "--temperature: must be a finite number"),
        (GEN + ["--top-k", "-1"], "--top-k: must be >= 0"),
        (GEN + ["--top-p", "0"], "--top-p: must be in (0, 1]"),
        (GEN + ["--top-p", "1.5"], "--top-p: must be in (0, 1]"),
        (GEN + ["--repetition-penalty", "nan"], "--repetition-penalty: must be a finite number"),
        (GEN + ["--repetition-penalty", "0"], "--repetition-penalty: must be > 0"),
        (CHAT + ["--max-new-tokens", "-3"], "--max-new-tokens: must be >= 1"),
        (CHAT + ["--max-context", "1"], "--max-context 1: must be >= 2"),
    ],
)
def test_bad_numeric_flag(argv, message, capsys):
    assert steel_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("steel: error: ") and message in err, err
    assert "model path does not exist" not in err  # refused before anything is loaded


@pytest.mark.parametrize(
    "command, body, message",
    [
        ("mc", "task: cmmlu\ndata: {cmmlu}\nlimit: -1\n", "limit: must be >= 1, got -1"),
        ("mc", "task: cmmlu\ndata: {cmmlu}\nlimit: 0\n", "limit: must be >= 1, got 0"),
        ("mc", "task: cmmlu\ndata: {cmmlu}\nshots: 6\n", "shots: must be in 0..5"),
        ("mc", "task: cmmlu\ndata: {cmmlu}\nbatch_size: -1\n", "batch_size: must be >= 1"),
        ("ppl", "data: /nonexistent-data\nmax_tokens: -3\n", "max_tokens: must be >= 1"),
        ("ppl", "data: /nonexistent-data\nseq_len: 0\n", "seq_len: must be >= 2"),
    ],
)
def test_bad_numeric_config_field(command, body, message, tmp_path, capsys):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(body.format(cmmlu=CMMLU), encoding="utf-8")
    assert steel_main(["eval", command, "--config", str(cfg), "--model", "/nonexistent-model"]) == 2
    err = capsys.readouterr().err
    assert f"steel: error: {cfg}: {message}" in err, err
