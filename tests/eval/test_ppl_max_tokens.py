"""`steel eval ppl --max-tokens N` scores exactly N tokens, shared among the sources in proportion to
their size (it used to overshoot by up to --batch-size windows and score only the first source)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_ppl_contamination import _data_dir
from tiny_models import build_tiny_llama

from steel.cli import main as steel_main
from steel.eval.ppl import perplexity, plan, windows


def _reference(model, chunks: dict[str, list[np.ndarray]], seq_len: int, quota: dict[str, int]):
    """Summed NLL of each source's first quota[src] predicted tokens, from full windows' log-softmax
    (a causal model's prefix scores do not depend on what follows, so cutting a window changes nothing)."""
    out = {}
    for src, arrays in chunks.items():
        total, left = 0.0, quota[src]
        for toks in arrays:
            for s, e in windows(len(toks), seq_len):
                if left <= 0:
                    break
                ids = torch.tensor(toks[s:e], dtype=torch.long)[None]
                with torch.no_grad():
                    logp = torch.log_softmax(model(ids).logits[0].float(), -1)
                k = min(left, e - s - 1)
                total -= float(logp[torch.arange(k), ids[0, 1 : k + 1]].sum())
                left -= k
        out[src] = (total, quota[src] - left)
    return out


@pytest.mark.parametrize("max_tokens, batch_size", [(63, 4), (100, 3), (151, 2), (1, 4), (10_000, 4)])
def test_max_tokens_exact_and_shared(tmp_path, max_tokens, batch_size):
    model = build_tiny_llama(300)
    rng = np.random.default_rng(1)
    a, b1, b2 = rng.integers(0, 300, 130), rng.integers(0, 300, 40), rng.integers(0, 300, 30)
    d = tmp_path / "data"
    _data_dir(d, {"a": a, "b1": b1, "b2": b2}, 300)
    manifest = json.loads((d / "manifest.json").read_text())
    for c in manifest["chunks"]:  # two chunks of source b
        c["source"] = c["source"][0]
    (d / "manifest.json").write_text(json.dumps(manifest))
    seq = 16
    avail = {"a": 130 - 9, "b": 40 - 3 + 30 - 2}  # each window of L tokens scores L - 1
    res = perplexity(model, d, seq, batch_size, max_tokens=max_tokens, advance=lambda n: None)
    want_total = min(max_tokens, sum(avail.values()))
    assert res["tokens"] == want_total
    assert res["available_tokens"] == sum(avail.values())
    # Proportional shares (largest remainder): within one token of N * available / total.
    total = sum(avail.values())
    got = {k: v["tokens"] for k, v in res["sources"].items()}
    for k in avail:
        assert abs(got.get(k, 0) - want_total * avail[k] / total) < 1
    assert sum(got.values()) == want_total
    ref = _reference(model, {"a": [a], "b": [b1, b2]}, seq, {k: got.get(k, 0) for k in avail})
    # NOTE: fp32, same per-window math; batching and summation order differ: 1e-5 relative.
    for k, (nll, n) in ref.items():
        if n:
            assert res["sources"][k]["nll"] == pytest.approx(nll / n, rel=1e-5)
        else:
            assert k in res["unscored_sources"]
    overall = sum(t for t, _ in ref.values()) / want_total
    assert res["nll"] == pytest.approx(overall, rel=1e-5)
    assert res["ppl"] == pytest.approx(math.exp(overall), rel=1e-5)


def test_plan_cuts_the_last_window():
    chunks = [{"tokens": 200, "source": "x"}]
    todo, avail = plan(chunks, 64, 63)
    assert todo == [(0, 0, 64)] and avail == {"x": 63 * 3 + 7}  # 200 = 64+64+64+8 tokens
    todo, _ = plan(chunks, 64, 70)
    assert todo == [(0, 0, 64), (0, 64, 72)]  # 63 + 7
    todo, _ = plan(chunks, 64, None)
    assert todo == [(0, 0, 64), (0, 64, 128), (0, 128, 192), (0, 192, 200)]


def test_cli_max_tokens(tmp_path, tiny_llama_dir):
    d = _data_dir(tmp_path / "data", {"a": np.arange(300) % 250, "z": np.arange(100) % 250}, 261)
    out = tmp_path / "ppl.json"
    argv = ["eval", "ppl", "--model", str(tiny_llama_dir), "--data", str(d), "--seq-len", "64",
            "--batch-size", "4", "--max-tokens", "63", "--out", str(out), "--device", "cpu"]
    assert steel_main(argv) == 0
    res = json.loads(out.read_text())
    assert res["tokens"] == 63
    # 63 * 295/393 = 47.3 and 63 * 98/393 = 15.7: the larger remainder takes the last token.
    assert {k: v["tokens"] for k, v in res["sources"].items()} == {"a": 47, "z": 16}
