"""Generation: KV cache == no cache == HF greedy, sampling filters by hand, streaming, chat over stdin."""

from __future__ import annotations

import io

import pytest
import torch
from tiny_models import build_tiny_llama

from steel.cli import main as steel_main
from steel.infer import generate as G
from steel.infer.chat import chat_loop


def _tiny_steel(vocab_size: int, ffn_type: str = "soft_moe_causal"):
    from steel.model import build_model, load_model_config

    cfg = load_model_config("tiny")
    cfg.vocab_size = vocab_size
    cfg.ffn_type = ffn_type
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 1.0)  # well-separated logits (see tiny_models.build_tiny_llama)
    return model


@pytest.mark.parametrize("arch", ["llama", "steel_causal_moe", "steel_swiglu"])
def test_cached_equals_uncached_equals_hf_greedy(arch):
    if arch == "llama":
        model = build_tiny_llama(300)
    else:
        model = _tiny_steel(300, "soft_moe_causal" if arch == "steel_causal_moe" else "swiglu")
    prompt = [5, 17, 42, 99, 7, 250, 3]
    opts = G.SamplingOptions(max_new_tokens=12, temperature=0.0)
    cached = list(G.generate_ids(model, prompt, opts, use_cache=True))
    uncached = list(G.generate_ids(model, prompt, opts, use_cache=False))
    assert len(cached) == 12
    assert cached == uncached
    # Independent reference: transformers' own greedy search.
    hf = model.generate(
        torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0
    )
    assert cached == hf[0, len(prompt) :].tolist()
    assert len(set(cached)) > 3  # a real sequence, not one token repeated


def test_stop_token_ends_generation():
    model = build_tiny_llama(300)
    prompt = [5, 17, 42]
    full = list(G.generate_ids(model, prompt, G.SamplingOptions(max_new_tokens=10, temperature=0.0)))
    stop = full[4]
    cut = list(
        G.generate_ids(model, prompt, G.SamplingOptions(max_new_tokens=10, temperature=0.0), stop_ids=[stop])
    )
    assert cut == full[: full.index(stop)]


def test_process_logits_by_hand():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0, 1.0])
    # Repetition penalty 2 on tokens 0 and 1: 2.0 -> 1.0, -1.0 -> -2.0 (CTRL rule).
    out = G.process_logits(
        logits, torch.tensor([0, 1]), G.SamplingOptions(temperature=0.0, repetition_penalty=2.0)
    )
    assert out.tolist() == [1.0, -2.0, 0.5, 3.0, 1.0]
    # top-k 2 keeps tokens 3 and 0.
    out = G.process_logits(
        logits, torch.tensor([], dtype=torch.long), G.SamplingOptions(temperature=1.0, top_k=2)
    )
    assert torch.isfinite(out).tolist() == [True, False, False, True, False]
    # top-p: probabilities sorted 3 (0.6285), 0 (0.2312), 4 (0.0851), 2 (0.0516), 1 (0.0031);
    # p=0.8 keeps 3 and 0 (0.8597 >= 0.8 after them), p=0.6 keeps only 3.
    out = G.process_logits(
        logits, torch.tensor([], dtype=torch.long), G.SamplingOptions(temperature=1.0, top_p=0.8)
    )
    assert torch.isfinite(out).tolist() == [True, False, False, True, False]
    out = G.process_logits(
        logits, torch.tensor([], dtype=torch.long), G.SamplingOptions(temperature=1.0, top_p=0.6)
    )
    assert torch.isfinite(out).tolist() == [False, False, False, True, False]
    # Temperature divides.
    out = G.process_logits(logits, torch.tensor([], dtype=torch.long), G.SamplingOptions(temperature=0.5))
    assert out.tolist() == (logits / 0.5).tolist()


def test_seeded_sampling_is_reproducible_and_top_k1_is_greedy():
    model = build_tiny_llama(300)
    prompt = [5, 17, 42]
    a = list(G.generate_ids(model, prompt, G.SamplingOptions(max_new_tokens=12, temperature=1.0, seed=3)))
    b = list(G.generate_ids(model, prompt, G.SamplingOptions(max_new_tokens=12, temperature=1.0, seed=3)))
    assert a == b
    greedy = list(G.generate_ids(model, prompt, G.SamplingOptions(max_new_tokens=12, temperature=0.0)))
    k1 = list(
        G.generate_ids(model, prompt, G.SamplingOptions(max_new_tokens=12, temperature=1.3, top_k=1, seed=5))
    )
    assert k1 == greedy


def test_text_stream_holds_partial_characters(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    text = "钢铁 Steel 模型，你好！"
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) > len(text)  # byte-level: Chinese characters are split across tokens
    pieces = []
    stream = G.TextStream(tok, pieces.append)
    for t in ids:
        stream.put(t)
    assert stream.end() == text
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)


def _greedy_reply(model, tok, messages, n):
    ids = G.chat_prompt_ids(tok, messages)
    return G.generate_text(model, tok, ids, G.SamplingOptions(max_new_tokens=n, temperature=0.0))


def test_chat_keeps_history_and_reset(tiny_llama_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import steel.infer.chat as chat_mod

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    prompts = []

    def recording(model, tok, ids, opts, stream, max_length=None, generator=None):
        prompts.append(list(ids))
        return G.generate_reply(model, tok, ids, opts, stream, max_length, generator)

    monkeypatch.setattr(chat_mod, "generate_reply", recording)
    opts = G.SamplingOptions(max_new_tokens=6, temperature=0.0)
    out = []
    history = chat_loop(
        model, tok, opts, io.StringIO("你好\n再见\n/reset\n再见\n"), out.append, system="你是Steel"
    )
    sys_msg = {"role": "system", "content": "你是Steel"}
    conv1 = [sys_msg, {"role": "user", "content": "你好"}]
    r1 = _greedy_reply(model, tok, conv1, 6)
    conv2 = conv1 + [{"role": "assistant", "content": r1}, {"role": "user", "content": "再见"}]
    r2 = _greedy_reply(model, tok, conv2, 6)
    conv3 = [sys_msg, {"role": "user", "content": "再见"}]
    r3 = _greedy_reply(model, tok, conv3, 6)
    # Each turn's prompt is the whole ChatML history (token for token); /reset drops it.
    assert prompts == [G.chat_prompt_ids(tok, c) for c in (conv1, conv2, conv3)]
    assert tok.decode(prompts[1]).startswith(
        "<|im_start|>system\n你是Steel<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "".join(out) == f"{r1}\n{r2}\n(history cleared)\n{r3}\n"
    assert history == conv3 + [{"role": "assistant", "content": r3}]


def test_fit_history_drops_oldest_exchange(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    from steel.infer.chat import fit_history

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    sys_msg = {"role": "system", "content": "s"}
    hist = [
        sys_msg,
        {"role": "user", "content": "a" * 50},
        {"role": "assistant", "content": "b" * 50},
        {"role": "user", "content": "c"},
    ]
    kept, ids = fit_history(tok, hist, 40)
    assert kept == [sys_msg, {"role": "user", "content": "c"}]
    assert ids == G.chat_prompt_ids(tok, kept) and len(ids) <= 40


def test_chat_and_generate_cli(tiny_llama_dir, monkeypatch, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/exit\nnever read\n"))
    rc = steel_main(
        [
            "chat",
            "--model",
            str(tiny_llama_dir),
            "--temperature",
            "0",
            "--max-new-tokens",
            "5",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    expected = _greedy_reply(model, tok, [{"role": "user", "content": "hello"}], 5)
    assert capsys.readouterr().out == expected + "\n"
    rc = steel_main(
        [
            "generate",
            "--model",
            str(tiny_llama_dir),
            "--prompt",
            "Steel is",
            "--temperature",
            "0",
            "--max-new-tokens",
            "5",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    ids = tok.encode("Steel is", add_special_tokens=False)
    expected = G.generate_text(model, tok, ids, G.SamplingOptions(max_new_tokens=5, temperature=0.0))
    assert capsys.readouterr().out == expected + "\n"
    assert steel_main(["generate", "--model", str(tiny_llama_dir), "--prompt", "x", "--top-p", "0"]) == 2
    capsys.readouterr()
    # --system without --chat was dropped without a word (a plain prompt has no place for it)
    assert steel_main(["generate", "--model", str(tiny_llama_dir), "--prompt", "x", "--system", "be brief"]) == 2
    assert "--system: needs --chat" in capsys.readouterr().err
