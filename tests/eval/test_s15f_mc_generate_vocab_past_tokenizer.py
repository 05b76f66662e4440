"""`steel eval mc --mode generate` on a model whose vocabulary is larger than its tokenizer's (session 15, F; as
`steel generate` in 2178199): transformers' greedy search picked embedding rows past the tokenizer, which have no
text, and decode dropped them: replies came out empty and were counted unanswered. It now picks only ids the
tokenizer has: the replies are those of the same model without the extra rows."""

from __future__ import annotations

import json

import torch
from test_mc import make_ceval_dir
from tiny_models import build_tiny_llama
from transformers import AutoTokenizer

from steel.cli import main as steel_main

PAST = 300


def _replies(model_dir, data, out) -> list[str]:
    argv = ["eval", "mc", "--model", str(model_dir), "--task", "ceval", "--mode", "generate", "--data", str(data),
            "--shots", "0", "--limit", "2", "--max-new-tokens", "4", "--device", "cpu", "--out", str(out)]
    assert steel_main(argv) == 0
    rows = [json.loads(line) for line in out.with_suffix(".questions.jsonl").read_text("utf-8").splitlines()]
    return [r["raw"] for r in rows]


def test_generate_mode_replies_with_tokens_only(tmp_path, tiny_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    n = len(tok)
    padded = build_tiny_llama(n + PAST)
    with torch.no_grad():  # rows without a token dominate the logits: greedy would always pick one
        padded.lm_head.weight[n:] *= 10.0
    exact = build_tiny_llama(n)  # the same weights, without the rows past the tokenizer
    state = padded.state_dict()
    exact.load_state_dict({k: v[:n] if v.shape[0] == n + PAST else v for k, v in state.items()})
    for name, model in (("padded", padded), ("exact", exact)):
        model.save_pretrained(str(tmp_path / name))
        tok.save_pretrained(str(tmp_path / name))
    data = make_ceval_dir(tmp_path / "ceval")
    want = _replies(tmp_path / "exact", data, tmp_path / "exact.json")
    assert all(want), want
    assert _replies(tmp_path / "padded", data, tmp_path / "padded.json") == want
