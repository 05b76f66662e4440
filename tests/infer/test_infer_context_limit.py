"""generate and chat never run past the model's max_position_embeddings (RoPE would extrapolate silently)."""

from __future__ import annotations

import io

import pytest
from tiny_models import SHORT_CONTEXT, build_tiny_llama

from steel.cli import UserError
from steel.cli import main as steel_main
from steel.infer import generate as G
from steel.infer.chat import chat_loop


def _steel_tiny(vocab_size: int):
    import torch

    from steel.model import build_model, load_model_config

    cfg = load_model_config("tiny")  # max_position_embeddings 256
    cfg.vocab_size = vocab_size
    torch.manual_seed(0)
    return build_model(cfg).eval()


@pytest.mark.parametrize("arch", ["llama", "steel"])
def test_generate_ids_stops_at_max_positions(arch, position_log):
    model = build_tiny_llama(300, max_positions=32) if arch == "llama" else _steel_tiny(300)
    limit = model.config.max_position_embeddings
    prompt = [(7 * i) % 250 + 3 for i in range(limit - 6)]
    opts = G.SamplingOptions(max_new_tokens=50, temperature=0.0)
    it = G.generate_ids(model, prompt, opts)
    got = []
    with pytest.raises(StopIteration) as stop:
        while True:
            got.append(next(it))
    assert stop.value.value == "max_positions"
    assert len(got) == 6 and len(prompt) + len(got) == limit
    assert max(position_log) == limit - 2  # the last token is never fed back
    # Under the limit, max_new_tokens ends it as before, with the same tokens.
    it = G.generate_ids(model, prompt, G.SamplingOptions(max_new_tokens=4, temperature=0.0))
    assert [next(it) for _ in range(4)] == got[:4]
    with pytest.raises(StopIteration) as stop:
        next(it)
    assert stop.value.value == "max_new_tokens"
    # A prompt that fills the context leaves no room: refused, nothing computed.
    position_log.clear()
    with pytest.raises(UserError, match=f"prompt is {limit} tokens .* context is {limit} positions"):
        next(G.generate_ids(model, prompt + [5] * 6, opts))
    assert position_log == []


def test_generate_cli_refuses_long_prompt_and_says_where_it_stopped(short_llama_dir, capsys, position_log):
    base = ["generate", "--model", str(short_llama_dir), "--temperature", "0", "--device", "cpu"]
    assert steel_main(base + ["--prompt", "x" * (SHORT_CONTEXT + 10)]) == 2
    err = capsys.readouterr().err
    assert f"--prompt: {SHORT_CONTEXT + 10} tokens" in err
    assert f"max_position_embeddings is {SHORT_CONTEXT}" in err
    assert position_log == []
    # 250 prompt tokens + 100 asked: 6 fit; the output is those 6 and stderr says why it ended there.
    assert steel_main(base + ["--prompt", "ab" * 125, "--max-new-tokens", "100"]) == 0
    err = capsys.readouterr().err
    assert f"max_position_embeddings ({SHORT_CONTEXT} tokens: 250 prompt + 6 new)" in err
    assert "--max-new-tokens 100" in err
    assert max(position_log) < SHORT_CONTEXT
    # Within the limit: no notice.
    assert steel_main(base + ["--prompt", "ab", "--max-new-tokens", "3"]) == 0
    assert "stopped at" not in capsys.readouterr().err


def _tok(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


def test_chat_drops_oldest_turns_keeps_system_and_tells_once(tiny_tokenizer_dir, position_log, monkeypatch):
    import steel.infer.chat as chat_mod

    tok = _tok(tiny_tokenizer_dir)
    model = build_tiny_llama(len(tok), max_positions=SHORT_CONTEXT)
    prompts = []

    def recording(model, tok, ids, opts, stream, max_length=None, generator=None):
        prompts.append(tok.decode(ids))
        return G.generate_reply(model, tok, ids, opts, stream, max_length, generator)

    monkeypatch.setattr(chat_mod, "generate_reply", recording)
    # 40 new tokens of room: the history gets 216 of the 256 positions; each user turn is ~60 tokens.
    opts = G.SamplingOptions(max_new_tokens=40, temperature=0.0)
    lines = [f"第{i}个问题：" + "问" * 15 + "\n" for i in range(6)]
    notes, out = [], []
    history = chat_loop(
        model, tok, opts, io.StringIO("".join(lines)), out.append, "你是Steel", SHORT_CONTEXT, notify=notes.append
    )
    assert len(prompts) == 6  # every message answered, none refused
    assert all(p.startswith("<|im_start|>system\n你是Steel<|im_end|>") for p in prompts)
    assert all(f"第{i}个问题" in p for i, p in enumerate(prompts))  # the newest turn is always there
    assert "第0个问题" not in prompts[-1]  # the oldest is gone
    assert history[0] == {"role": "system", "content": "你是Steel"}
    drops = [n for n in notes if "dropped the oldest" in n and "system prompt is kept" in n]
    assert drops and len(drops) == len(notes)  # one line per drop, nothing else
    assert len(drops) <= 5 and all(n.endswith("\n") for n in drops)
    assert max(position_log) < SHORT_CONTEXT


def test_chat_cuts_long_reply_and_skips_message_that_cannot_fit(tiny_tokenizer_dir, position_log):
    tok = _tok(tiny_tokenizer_dir)
    model = build_tiny_llama(len(tok), max_positions=SHORT_CONTEXT)
    # --max-new-tokens larger than the context: the reply gets half the context and is cut at its end.
    opts = G.SamplingOptions(max_new_tokens=1000, temperature=0.0)
    notes, out = [], []
    text = "你好\n" + "长" * 60 + "\n再见\n"  # the middle message alone is 180+ tokens > 128 of history room
    history = chat_loop(
        model, tok, opts, io.StringIO(text), out.append, None, SHORT_CONTEXT, notify=notes.append
    )
    assert max(position_log) < SHORT_CONTEXT
    assert any("message not sent" in n and "128 of the 256-token context" in n for n in notes)
    assert [m["content"] for m in history if m["role"] == "user"][-1] == "再见"
    assert "长" * 60 not in [m["content"] for m in history]
    cut = [n for n in notes if "reply cut" in n]
    assert cut  # the tiny random model does not stop by itself within 1000 tokens
    with pytest.raises(UserError, match="--system: the system prompt takes"):
        chat_loop(model, tok, opts, io.StringIO("hi\n"), out.append, "系" * 60, SHORT_CONTEXT)


def test_chat_cli_max_context_cannot_exceed_the_model(short_llama_dir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    base = ["chat", "--model", str(short_llama_dir), "--device", "cpu", "--temperature", "0"]
    assert steel_main(base + ["--max-context", str(SHORT_CONTEXT + 1)]) == 2
    err = capsys.readouterr().err
    assert f"--max-context {SHORT_CONTEXT + 1}: exceeds the model's max_position_embeddings {SHORT_CONTEXT}" in err
