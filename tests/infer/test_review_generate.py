"""Review findings for `steel generate` / `steel chat` on stock HF models and Steel models."""

from __future__ import annotations

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
