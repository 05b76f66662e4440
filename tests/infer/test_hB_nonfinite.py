"""A model whose logits are not finite (float16 overflowing a bf16-trained model, broken weights) is an
error naming the cause: `steel generate` died in torch.multinomial with a traceback (sampling) or printed
token 0 over and over (greedy), `steel eval ppl` wrote `"nll": NaN` into its JSON (not JSON), and
`steel eval mc` scored NaN letter logits (argmax picks a letter by its NaN rule: a figure without a word)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import build_tiny_llama
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from test_ppl_contamination import _data_dir  # noqa: E402

from steel.cli import main as steel_main  # noqa: E402


@pytest.fixture(scope="module")
def overflowing_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """The tiny Llama with one inf weight: every position's hidden state, hence its logits, is NaN."""
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    model = build_tiny_llama(len(tok))
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("inf")
    d = tmp_path_factory.mktemp("overflowing")
    model.save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


@pytest.mark.parametrize("temperature", ["0", "0.7"])
def test_generate_refuses_non_finite_logits(overflowing_dir, capsys, temperature):
    argv = ["generate", "--model", str(overflowing_dir), "--prompt", "hi", "--max-new-tokens", "3",
            "--temperature", temperature, "--seed", "0", "--device", "cpu"]
    assert steel_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "", captured.out  # nothing generated from NaN logits
    assert captured.err.splitlines()[-1].startswith("steel: error: the model's logits are not finite (NaN or inf) after 2 tokens "
                                   "with the model in float32"), captured.err


def test_ppl_refuses_non_finite_loss(tmp_path, overflowing_dir, capsys):
    data = _data_dir(tmp_path / "data", {"a": np.arange(40) % 250}, 261)
    out = tmp_path / "ppl.json"
    argv = ["eval", "ppl", "--model", str(overflowing_dir), "--data", str(data), "--seq-len", "16",
            "--device", "cpu", "--out", str(out)]
    assert steel_main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"steel: error: {data / 'a.bin'}: tokens 0..32 give a non-finite loss (nan) with the "
                          "model in float32"), err
    assert not out.exists()


def test_eval_mc_refuses_non_finite_logits(tmp_path, overflowing_dir, capsys):
    from test_mc import make_ceval_dir

    out = tmp_path / "mc.json"
    argv = ["eval", "mc", "--model", str(overflowing_dir), "--task", "ceval", "--data",
            str(make_ceval_dir(tmp_path / "ceval")), "--shots", "0", "--limit", "2", "--device", "cpu", "--out",
            str(out)]
    assert steel_main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("steel: error: the model's logits are not finite (NaN or inf) with the "
                                           "model in float32"), err
    assert not out.exists()
