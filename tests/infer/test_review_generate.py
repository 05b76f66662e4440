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
        pytest.skip("the cuda case needs a machine without CUDA (there --device cuda is valid)")
    import steel.infer.load as load

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before --device was checked")

    monkeypatch.setattr(load, "load_model", no_load)
    for cmd in (["generate", "--prompt", "x"], ["chat"], ["eval", "ppl", "--data", str(tiny_llama_dir)]):
        assert steel_main([*cmd, "--model", str(tiny_llama_dir), "--device", device]) == 2
        assert f"--device {device}" in capsys.readouterr().err


def _steel(ffn_type: str, document_mask: bool):
    from steel.model import build_model, load_model_config

    cfg = load_model_config("tiny")
    cfg.vocab_size, cfg.ffn_type, cfg.document_mask = 300, ffn_type, document_mask
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 1.0)  # well-separated logits (see tiny_models.build_tiny_llama)
    return model


def _full_forward_greedy(model, prompt: list[int], n: int) -> list[int]:
    """Reference: each token is the argmax of one forward over the whole sequence so far."""
    seq = list(prompt)
    for _ in range(n):
        with torch.no_grad():
            seq.append(int(model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].argmax()))
    return seq[len(prompt):]


@pytest.mark.parametrize("ffn_type", ["swiglu", "soft_moe_causal"])
@pytest.mark.parametrize("eos_at", ["middle", "end"])
def test_document_mask_cached_decoding_is_the_full_forward(ffn_type, eos_at):
    # An SFT model (document_mask: positions restart and attention stays inside each EOS-ended document)
    # given a prompt holding EOS: the fresh forward over the prompt was document-masked, but each cached
    # step attended to the whole cache at global positions, so cached decoding left the model's own
    # reading of the sequence from the first new token (the README promises cached == recomputed).
    model = _steel(ffn_type, document_mask=True)
    eos = model.config.eos_token_id
    prompt = [5, 17, 42, eos, 99, 7, 250, 3] if eos_at == "middle" else [5, 17, 42, 99, eos]
    ref = _full_forward_greedy(model, prompt, 12)
    opts = G.SamplingOptions(max_new_tokens=12, temperature=0.0)
    assert list(G.generate_ids(model, prompt, opts, use_cache=True)) == ref
    assert list(G.generate_ids(model, prompt, opts, use_cache=False)) == ref
    assert len(set(ref)) > 3  # a real sequence, not one token repeated


def test_stops_at_the_eos_ids_of_a_models_generation_config(tmp_path, tiny_llama_dir, monkeypatch, capsys):
    # A stock chat model ends its turn with an id its generation_config.json names (Gemma's
    # <end_of_turn>, Phi-3's <|end|>, Llama-3's <|eom_id|>) that is neither <|im_end|>, <|endoftext|> nor
    # the tokenizer's EOS: generate and chat ran past it into a turn of their own.
    import io
    import json
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, d)
    model = AutoModelForCausalLM.from_pretrained(str(d)).eval()
    tok = AutoTokenizer.from_pretrained(str(d))
    ids = G.chat_prompt_ids(tok, [{"role": "user", "content": "hello"}])
    free = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, eos_token_id=None,
                          pad_token_id=0)[0, len(ids):].tolist()
    end = free[3]
    assert end not in free[:3]
    (d / "generation_config.json").write_text(json.dumps({"eos_token_id": [end], "bos_token_id": 1}))
    # Independent reference: transformers' greedy search with that generation config.
    model = AutoModelForCausalLM.from_pretrained(str(d)).eval()
    hf = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert hf[0, len(ids):].tolist() == free[:3] + [end]
    want = tok.decode(free[:3], skip_special_tokens=True)
    base = ["--model", str(d), "--temperature", "0", "--max-new-tokens", "8", "--device", "cpu"]
    assert steel_main(["generate", *base, "--chat", "--prompt", "hello"]) == 0
    assert capsys.readouterr().out == want + "\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    assert steel_main(["chat", *base]) == 0
    assert capsys.readouterr().out == want + "\n"
