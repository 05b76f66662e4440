"""`steel export` of a checkpoint whose config says tie_word_embeddings but whose lm_head is not its embedding
(SFT of such an HF init; loading keeps both, 222a72f): the export says `tie_word_embeddings: false`, so vLLM or
llama.cpp's converter do not take the embedding for the head, and `--stock` exports it (its tied stock class had
the lm_head's values copied over the embedding and the export was refused as computing other logits). A truly
tied model stays tied."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_dirs import make_run_dir  # noqa: E402
from tiny_models import build_byte_tokenizer  # noqa: E402

from steel.cli import main as steel_main  # noqa: E402
from steel.model import build_model, load_model_config  # noqa: E402


def _run(tmp_path, tied: bool, says_tied: bool):
    tok = build_byte_tokenizer(tmp_path / "tok")
    cfg = load_model_config("tiny")
    cfg.ffn_type, cfg.tie_word_embeddings, cfg.vocab_size = "swiglu", tied, max(cfg.vocab_size, len(tok))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    model.config.tie_word_embeddings = says_tied
    run = make_run_dir(tmp_path / "run", model, [])
    shutil.copytree(tmp_path / "tok", run / "tokenizer")
    return run, model


@pytest.mark.parametrize("stock", [False, True])
def test_untied_weights_under_a_tied_config_export_untied(tmp_path, stock):
    from transformers import AutoModelForCausalLM

    run, model = _run(tmp_path, tied=False, says_tied=True)
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    out = tmp_path / "hf"
    assert steel_main(["export", str(run), str(out)] + (["--stock"] if stock else [])) == 0
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is False
    got = AutoModelForCausalLM.from_pretrained(str(out), trust_remote_code=not stock).eval()
    assert torch.equal(got.lm_head.weight, model.lm_head.weight)
    assert torch.equal(got.model.embed_tokens.weight, model.model.embed_tokens.weight)
    ids = torch.tensor([[5, 9, 77, 100, 3]])
    with torch.no_grad():
        torch.testing.assert_close(got(ids).logits, model(ids).logits, rtol=0, atol=1e-5)  # fp32, same ops


def test_a_tied_model_stays_tied(tmp_path):
    run, _ = _run(tmp_path, tied=True, says_tied=True)
    out = tmp_path / "hf"
    assert steel_main(["export", str(run), str(out), "--stock"]) == 0
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is True
