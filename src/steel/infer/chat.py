"""Interactive multi-turn chat in the terminal (ChatML history, streamed replies).

Each user line becomes a user turn; the whole history is rendered with the tokenizer's chat template
and the reply streams as it is generated, stopping at `<|im_end|>`. Commands: `/reset` forgets the
history, `/exit` (or end of input) quits. Lines come from stdin, so `steel chat < questions.txt` works.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from steel.infer.generate import SamplingOptions, TextStream, chat_prompt_ids, generate_text


def fit_history(tokenizer, history: list[dict], max_prompt_tokens: int) -> tuple[list[dict], list[int]]:
    """Drop the oldest user/assistant turns (never the system prompt or the last user turn) until it fits."""
    history = list(history)
    while True:
        ids = chat_prompt_ids(tokenizer, history)
        first = 1 if history and history[0]["role"] == "system" else 0
        if len(ids) <= max_prompt_tokens or len(history) - first <= 1:
            return history, ids
        # Remove one full exchange (user + assistant) from the front.
        del history[first : first + 2]


def chat_loop(
    model,
    tokenizer,
    opts: SamplingOptions,
    lines: Iterable[str],
    write: Callable[[str], object],
    system: str | None = None,
    max_context: int = 2048,
    interactive: bool = False,
) -> list[dict]:
    """Run the conversation over `lines`; returns the final history."""
    base = [{"role": "system", "content": system}] if system else []
    history = list(base)
    if interactive:
        write("(steel chat: /reset to start over, /exit or Ctrl-D to quit)\n>>> ")
    for line in lines:
        text = line.rstrip("\n")
        if text.strip() in ("/exit", "/quit"):
            break
        if text.strip() == "/reset":
            history = list(base)
            write("(history cleared)\n")
        elif text.strip():
            history.append({"role": "user", "content": text})
            # Leave room for the reply inside the model's context.
            history, ids = fit_history(tokenizer, history, max(1, max_context - opts.max_new_tokens))
            reply = generate_text(model, tokenizer, ids, opts, TextStream(tokenizer, write))
            write("\n")
            history.append({"role": "assistant", "content": reply})
        if interactive:
            write(">>> ")
    return history


def run_chat(model, tokenizer, opts: SamplingOptions, system: str | None, max_context: int) -> int:
    def write(s: str) -> None:
        sys.stdout.write(s)
        sys.stdout.flush()

    chat_loop(model, tokenizer, opts, sys.stdin, write, system, max_context, interactive=sys.stdin.isatty())
    return 0
