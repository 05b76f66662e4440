"""A run dir's checkpoint whose config says tied embeddings but which holds an lm_head.weight other than the
embedding loads both as saved, as `from_pretrained` does (untied, with transformers' warning). Such a checkpoint
comes from SFT on an HF init whose config says tied while its lm_head differs (from_pretrained leaves it untied
and the config as it was). Tied before loading, the embedding was overwritten by lm_head's values."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_dirs import make_run_dir  # noqa: E402

from steel.cli import UserError  # noqa: E402
from steel.infer.load import model_from_checkpoint  # noqa: E402
from steel.model import build_model, load_model_config  # noqa: E402


def _own_tensors(path):
    """The tensors of `path` in memory of their own. NOTE: `load_file` gives views of an mmap of the file, and
    safetensors < 0.8 (transformers 5.4 allows 0.4.3) rewrites a file in place: saving the edited state back to
    the same path changed the tensors still held (the test compared against bytes of the new layout)."""
    return {k: v.clone() for k, v in load_file(path).items()}


def _untied_model_saying_tied():
    cfg = load_model_config("tiny")
    cfg.ffn_type = "swiglu"
    cfg.tie_word_embeddings = False
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    model.config.tie_word_embeddings = True  # what from_pretrained leaves in the config of such an init
    return model


def test_tied_config_with_a_different_lm_head_loads_both_as_saved(tmp_path):
    from transformers import AutoModelForCausalLM

    saved = _untied_model_saying_tied()
    ckpt = make_run_dir(tmp_path / "run", saved, [], steps=(3,)) / "checkpoints" / "step-3"
    state = load_file(ckpt / "model.safetensors")
    loaded = model_from_checkpoint(ckpt)
    assert torch.equal(loaded.model.embed_tokens.weight, state["model.embed_tokens.weight"])
    assert torch.equal(loaded.lm_head.weight, state["lm_head.weight"])
    ids = torch.tensor([[5, 9, 17, 3, 80]])
    assert torch.equal(loaded(ids).logits, saved(ids).logits)
    # the reference: from_pretrained of the same weights and config
    saved.save_pretrained(tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert hf.lm_head.weight is not hf.model.embed_tokens.weight
    assert torch.equal(loaded(ids).logits, hf(ids).logits)


def test_tied_checkpoint_holding_only_lm_head_takes_it_for_both(tmp_path):
    cfg = load_model_config("tiny")
    cfg.ffn_type = "swiglu"
    cfg.tie_word_embeddings = True
    torch.manual_seed(1)
    saved = build_model(cfg).eval()
    ckpt = make_run_dir(tmp_path / "run", saved, [], steps=(3,)) / "checkpoints" / "step-3"
    state = _own_tensors(ckpt / "model.safetensors")
    del state["model.embed_tokens.weight"]
    save_file(state, str(ckpt / "model.safetensors"))
    loaded = model_from_checkpoint(ckpt)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    assert torch.equal(loaded.model.embed_tokens.weight, state["lm_head.weight"])


def test_tied_checkpoint_missing_both_is_refused(tmp_path):
    cfg = load_model_config("tiny")
    cfg.ffn_type = "swiglu"
    cfg.tie_word_embeddings = True
    saved = build_model(cfg).eval()
    ckpt = make_run_dir(tmp_path / "run", saved, [], steps=(3,)) / "checkpoints" / "step-3"
    state = _own_tensors(ckpt / "model.safetensors")
    del state["model.embed_tokens.weight"], state["lm_head.weight"]
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(UserError, match="does not match its model config.*embed_tokens"):
        model_from_checkpoint(ckpt)
