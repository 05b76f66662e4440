"""`steel eval mc --mode generate` on a model whose logits are not finite is the error logprob mode gives:
greedy decoding of NaN logits wrote token 0 over and over, every reply counted unanswered (a 0% figure
without a word)."""

from __future__ import annotations

import torch
from test_mc import make_ceval_dir
from tiny_models import build_tiny_llama
from transformers import AutoTokenizer

from steel.cli import main as steel_main


def test_generate_mode_refuses_non_finite_logits(tmp_path, tiny_tokenizer_dir, capsys):
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    model = build_tiny_llama(len(tok))
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("inf")  # every hidden state NaN
    model_dir = tmp_path / "overflowing"
    model.save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))
    out = tmp_path / "mc.json"
    argv = ["eval", "mc", "--model", str(model_dir), "--task", "ceval", "--mode", "generate", "--data",
            str(make_ceval_dir(tmp_path / "ceval")), "--shots", "0", "--limit", "2", "--max-new-tokens", "2",
            "--device", "cpu", "--out", str(out)]
    assert steel_main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("steel: error: the model's logits are not finite (NaN or inf) with the "
                                           "model in float32"), err
    assert not out.exists()
