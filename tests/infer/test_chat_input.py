"""steel chat: user lines are normalized as SFT normalized its data (CRLF, whitespace, NFC, zero-width)."""

from __future__ import annotations

import io

from transformers import AutoTokenizer

import steel.infer.chat as chat_mod
from steel.infer import generate as G


def test_chat_lines_are_normalized_like_sft_data(tiny_tokenizer_dir, monkeypatch):
    # `line.rstrip("\n")` kept the "\r" of CRLF input, surrounding spaces, "e" + combining acute and
    # zero-width spaces: prompts of a form SFT never trained on.
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    prompts = []

    def reply(model, tok, ids, opts, stream, max_length=None):
        prompts.append(list(ids))
        return G.Reply("ok")

    monkeypatch.setattr(chat_mod, "generate_reply", reply)
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
