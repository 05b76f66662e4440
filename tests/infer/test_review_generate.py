"""Review findings for `steel generate` / `steel chat` on stock HF models and Steel models."""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_metaspace_tokenizer, build_tiny_llama

from steel.cli import main as steel_main
from steel.infer import generate as G


def test_plain_generate_starts_with_the_tokenizers_bos(tmp_path, monkeypatch, capsys):
    # `steel generate` encoded a plain prompt with add_special_tokens=False: a Llama-style model (its
    # tokenizer puts BOS before every text, and the model never saw a text without it) was prompted
    # without BOS, while `steel eval mc` scores the same model with it.
    tok = build_metaspace_tokenizer(tmp_path)
    build_tiny_llama(len(tok)).save_pretrained(str(tmp_path))
    prompts = []
    real = G.generate_reply

    def recording(model, tok, ids, opts, stream=None, max_length=None):
        prompts.append(list(ids))
        return real(model, tok, ids, opts, stream, max_length)

    monkeypatch.setattr(G, "generate_reply", recording)
    rc = steel_main(["generate", "--model", str(tmp_path), "--prompt", "中国历史", "--temperature", "0",
                     "--max-new-tokens", "2", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    # Independent reference: what the tokenizer itself makes of the text by default.
    assert prompts == [tok("中国历史")["input_ids"]]
    assert prompts[0][0] == tok.bos_token_id == 1


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda"])
def test_bad_device_is_a_user_error_before_loading(device, tiny_llama_dir, monkeypatch, capsys):
    # `--device gpu` (or cuda on a machine without one) loaded the whole model, then died in `.to(device)`
    # with a RuntimeError/AssertionError traceback.
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    import steel.infer.load as load

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before --device was checked")

    monkeypatch.setattr(load, "load_model", no_load)
    for cmd in (["generate", "--prompt", "x"], ["chat"], ["eval", "ppl", "--data", str(tiny_llama_dir)]):
        assert steel_main([*cmd, "--model", str(tiny_llama_dir), "--device", device]) == 2
        assert f"--device {device}" in capsys.readouterr().err
