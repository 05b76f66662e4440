"""`eval mc` / `generate` on an SFT run whose `init` (the pretraining run) was deleted or moved: the lineage cannot
be followed, and the SFT run was taken for a stock model, so the tokenizer's `<s>` was put before the prompt of a
Steel model (model_type steel: a class only Steel trains) that never read one. The checkpoint's model type tells
now; an SFT of a stock init (model_type llama) still gets the BOS. Checked against plain forwards."""

from __future__ import annotations

import shutil

import torch
from test_s11_eval_ppl_bos_lineage import _run
from tiny_models import build_metaspace_tokenizer, build_tiny_llama, greedy_text, steel_generate

from steel.eval.cli import trained_without_bos


def test_sft_of_a_deleted_steel_run_gets_no_bos_sft_of_a_stock_init_does(tmp_path, capsys):
    from steel.model import SteelConfig, SteelForCausalLM

    tok_dir = tmp_path / "tok"
    tok = build_metaspace_tokenizer(tok_dir)
    cfg = SteelConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, ffn_type="swiglu", rope_theta=10000.0,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = SteelForCausalLM(cfg).eval()
    with torch.no_grad():  # near-uniform logits at the default init: make the BOS change the greedy choice
        model.lm_head.weight.mul_(40)
    without, with_bos = greedy_text(model, tok, False), greedy_text(model, tok, True)
    assert without != with_bos

    pre = _run(tmp_path / "pre", model, tok_dir, {"model": {"config": "tiny"}, "data": {"dirs": []}})
    sft = _run(tmp_path / "sft", model, tok_dir, {"init": str(pre)})
    shutil.rmtree(pre)  # the pretraining run deleted (its checkpoints are large); the SFT run is kept
    assert trained_without_bos(sft) is True
    assert trained_without_bos(sft / "checkpoints" / "step-3") is True
    assert steel_generate(sft, capsys)[0] == without

    llama = build_tiny_llama(len(tok))  # SFT of a stock init, which is gone too: its model type is llama
    stock_sft = _run(tmp_path / "sft2", llama, tok_dir, {"init": str(tmp_path / "gone-llama")})
    assert trained_without_bos(stock_sft) is False
    assert steel_generate(stock_sft, capsys)[0] == greedy_text(llama, tok, True)
