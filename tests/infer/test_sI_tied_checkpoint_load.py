"""A run dir's checkpoint of a model with tied embeddings loads tied: built without random init
(`no_init_weights`), post_init's tie_weights was skipped too, so lm_head stayed an uninitialised tensor of its
own, read as garbage when the checkpoint holds only model.embed_tokens.weight."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_dirs import make_run_dir  # noqa: E402

from steel.infer.load import model_from_checkpoint  # noqa: E402
from steel.model import build_model, load_model_config  # noqa: E402


@pytest.mark.parametrize("with_lm_head", [True, False])
def test_tied_checkpoint_loads_tied(tmp_path, with_lm_head):
    cfg = load_model_config("tiny")
    cfg.ffn_type = "swiglu"
    cfg.tie_word_embeddings = True
    torch.manual_seed(0)
    saved = build_model(cfg).eval()
    assert saved.lm_head.weight is saved.model.embed_tokens.weight
    ckpt = make_run_dir(tmp_path / "run", saved, [], steps=(3,)) / "checkpoints" / "step-3"
    if not with_lm_head:  # tied: the embedding alone holds the weights
        state = load_file(ckpt / "model.safetensors")
        del state["lm_head.weight"]
        save_file(state, str(ckpt / "model.safetensors"))
    loaded = model_from_checkpoint(ckpt)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    assert torch.equal(loaded.lm_head.weight, saved.model.embed_tokens.weight)
    ids = torch.tensor([[5, 9, 17, 3, 80]])
    assert torch.equal(loaded(ids).logits, saved(ids).logits)
