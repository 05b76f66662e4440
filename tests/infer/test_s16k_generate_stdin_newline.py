"""`steel generate --prompt -` (no --chat) continues the text piped in, without the line end `echo` or a
file's last line adds (session 16, K): `echo 钢铁是 | steel generate --prompt -` continued "钢铁是\\n", a new
line, where `--prompt 钢铁是` continues the sentence. The --chat path already drops it (normalized as chat)."""

from __future__ import annotations

import io

import pytest
from transformers import AutoTokenizer

from steel.infer import generate as G


@pytest.mark.parametrize("stdin, text", [
    ("钢铁是\n", "钢铁是"),
    ("钢铁是\r\n", "钢铁是"),
    ("第一行\n\n", "第一行\n"),  # one line end only: a blank line piped in on purpose stays
    ("钢铁是", "钢铁是"),
    (" 钢铁\t是 \n", " 钢铁\t是 "),  # nothing else is touched: a plain prompt is continued as given
])
def test_plain_stdin_prompt_loses_its_last_line_end(tiny_tokenizer_dir, monkeypatch, stdin, text):
    import steel.infer.cli as cli
    from steel.cli import main as steel_main

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    prompts = []
    monkeypatch.setattr(G, "generate_reply", lambda model, tok, ids, opts, stream, **kw: (prompts.append(list(ids)),
                                                                                          G.Reply("ok"))[1])
    monkeypatch.setattr(cli, "_load", lambda args: (None, tok))
    monkeypatch.setattr("steel.infer.load.max_positions", lambda model: None)
    monkeypatch.setattr("steel.eval.cli.no_bos_for", lambda *a: True)  # no BOS question: ids of the text alone
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin, newline=""))
    assert steel_main(["generate", "--model", "m", "--prompt", "-"]) == 0
    assert prompts == [tok.encode(text, add_special_tokens=False)]
