"""steel chat: user lines are normalized as SFT normalized its data (CRLF, whitespace, NFC, zero-width)."""

from __future__ import annotations

import io

from transformers import AutoTokenizer

import steel.infer.chat as chat_mod
from steel.infer import generate as G


def recorded_prompts(monkeypatch, module) -> list[list[int]]:
    """`module.generate_reply` replaced by one that records the prompt ids and replies "ok"."""
    prompts = []

    def reply(model, tok, ids, opts, stream, max_length=None, generator=None):
        prompts.append(list(ids))
        return G.Reply("ok")

    monkeypatch.setattr(module, "generate_reply", reply)
    return prompts


def test_chat_lines_are_normalized_like_sft_data(tiny_tokenizer_dir, monkeypatch):
    # `line.rstrip("\n")` kept the "\r" of CRLF input, surrounding spaces, "e" + combining acute and
    # zero-width spaces: prompts of a form SFT never trained on.
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    prompts = recorded_prompts(monkeypatch, chat_mod)
    lines = io.StringIO("  你好 \r\ncafe\u0301\u200b\r\n\u200b\r\n /reset \r\nx\ty\r\n/exit\r\nnever\r\n", newline="")
    out = []
    history = chat_mod.chat_loop(None, tok, G.SamplingOptions(), lines, out.append, system=" 你是Steel\r\n")
    sys_msg = {"role": "system", "content": "你是Steel"}
    conv1 = [sys_msg, {"role": "user", "content": "你好"}]
    conv2 = conv1 + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "caf\u00e9"}]
    conv3 = [sys_msg, {"role": "user", "content": "x\ty"}]
    assert prompts == [G.chat_prompt_ids(tok, c) for c in (conv1, conv2, conv3)]
    assert history == conv3 + [{"role": "assistant", "content": "ok"}]
    # a line of a zero-width space alone is no message; " /reset \r\n" and "/exit\r\n" are commands
    assert "".join(out) == "\n\n(history cleared)\n\n"


def test_generate_chat_prompt_is_normalized_like_steel_chat(tiny_tokenizer_dir, monkeypatch, capsys):
    # `steel generate --chat --prompt -` read stdin with its final newline (and any CRLF) into the user turn.
    import steel.infer.cli as cli
    from steel.cli import main as steel_main

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    prompts = recorded_prompts(monkeypatch, G)
    monkeypatch.setattr(cli, "_load", lambda args: (None, tok))
    monkeypatch.setattr("steel.infer.load.max_positions", lambda model: None)
    monkeypatch.setattr("sys.stdin", io.StringIO(" 你好\r\n"))
    assert steel_main(["generate", "--model", "m", "--chat", "--prompt", "-", "--system", "你是Steel \r\n"]) == 0
    want = G.chat_prompt_ids(tok, [{"role": "system", "content": "你是Steel"}, {"role": "user", "content": "你好"}])
    assert prompts == [want]
    monkeypatch.setattr("sys.stdin", io.StringIO("\u200b\r\n"))
    assert steel_main(["generate", "--model", "m", "--chat", "--prompt", "-"]) == 2
    assert "--prompt -: empty prompt (stdin held no text)" in capsys.readouterr().err  # names where it came from
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))  # `echo | steel generate --prompt -`: its one line end dropped
    assert steel_main(["generate", "--model", "m", "--prompt", "-"]) == 2
    assert "--prompt -: empty prompt (stdin held no text)" in capsys.readouterr().err
    assert steel_main(["generate", "--model", "m", "--prompt", ""]) == 2  # an empty --prompt itself: no stdin named
    err = capsys.readouterr().err
    assert "--prompt: empty prompt" in err and "stdin" not in err


def test_chat_seed_seeds_the_conversation_not_every_turn(tiny_tokenizer_dir, tiny_llama_dir):
    # `--seed` restarted the generator at every turn: the same prompt got the same "random" reply again
    # (after /reset, or a regenerated question). One generator now runs through the conversation: the
    # whole transcript is reproducible, and a repeated prompt samples anew.
    from transformers import AutoModelForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    opts = G.SamplingOptions(max_new_tokens=8, temperature=1.0, seed=7)

    def transcript():
        out = []
        chat_mod.chat_loop(model, tok, opts, io.StringIO("hi\n/reset\nhi\n"), out.append, notify=lambda s: None)
        return "".join(out)

    first = transcript()
    assert first == transcript()  # seeded: the same conversation again
    reply1, rest = first.split("\n", 1)
    reply2 = rest.split("(history cleared)\n", 1)[1].split("\n", 1)[0]
    assert reply1 and reply2 and reply1 != reply2  # same prompt, the generator went on
