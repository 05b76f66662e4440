"""`eval mc` / `generate` on an SFT run whose `init` (the pretraining run) was deleted or moved: the lineage cannot
be followed, and the SFT run was taken for a stock model, so the tokenizer's `<s>` was put before the prompt of a
Steel model (model_type steel: a class only Steel trains) that never read one. The checkpoint's model type tells
now; an SFT of a stock init (model_type llama) still gets the BOS. Checked against plain forwards."""

from __future__ import annotations

import shutil

import torch
from test_s11_eval_ppl_bos_lineage import _run
from tiny_models import build_metaspace_tokenizer, build_tiny_llama

from steel.cli import main as steel_main
from steel.eval.cli import trained_without_bos

PROMPT = "以下是中国关于考试的单项选择题"


@torch.no_grad()
def _greedy(model, tok, bos: bool, n: int = 6) -> str:
    ids = ([tok.bos_token_id] if bos else []) + tok.encode(PROMPT, add_special_tokens=False)
    new = []
    for _ in range(n):
        nxt = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
        if nxt == tok.eos_token_id:
            break
        new.append(nxt)
    return tok.decode(new, skip_special_tokens=True)


def _generate(model_dir, capsys) -> str:
    capsys.readouterr()
    assert steel_main(["generate", "--model", str(model_dir), "--prompt", PROMPT, "--temperature", "0",
                       "--max-new-tokens", "6", "--device", "cpu"]) == 0
    return capsys.readouterr().out.removesuffix("\n")


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
    without, with_bos = _greedy(model, tok, False), _greedy(model, tok, True)
    assert without != with_bos

    pre = _run(tmp_path / "pre", model, tok_dir, {"model": {"config": "tiny"}, "data": {"dirs": []}})
    sft = _run(tmp_path / "sft", model, tok_dir, {"init": str(pre)})
    shutil.rmtree(pre)  # the pretraining run deleted (its checkpoints are large); the SFT run is kept
    assert trained_without_bos(sft) is True
    assert trained_without_bos(sft / "checkpoints" / "step-3") is True
    assert _generate(sft, capsys) == without

    llama = build_tiny_llama(len(tok))  # SFT of a stock init, which is gone too: its model type is llama
    stock_sft = _run(tmp_path / "sft2", llama, tok_dir, {"init": str(tmp_path / "gone-llama")})
    assert trained_without_bos(stock_sft) is False
    assert _generate(stock_sft, capsys) == _greedy(llama, tok, True)
