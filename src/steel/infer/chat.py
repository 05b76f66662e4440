"""Interactive multi-turn chat in the terminal (ChatML history, streamed replies).

Each user line becomes a user turn; the whole history is rendered with the tokenizer's chat template
and the reply streams as it is generated, stopping at `<|im_end|>`. Commands: `/reset` forgets the
history, `/exit` (or end of input) quits. Lines come from stdin, so `steel chat < questions.txt` works.
Each line, and the system prompt, is normalized as SFT normalizes its data by default (`steel data
prepare`'s NFC, control and zero-width characters, CRLF and surrounding whitespace), so the model is
prompted with text of the form it was trained on.

The conversation lives in `max_context` tokens (the model's max positions unless smaller): the reply
gets `max_new_tokens` of room (at most half the context) and the history the rest. When the history no
longer fits, the oldest user/assistant exchanges are dropped (the system prompt stays) and one line on
stderr says so; a reply that reaches the end of the context is cut there, also with a line on stderr.
A single message too long to fit even alone is not sent (said on stderr); the chat goes on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from steel.cli import UserError
from steel.data.normalize import Normalizer
from steel.infer.generate import (
    SamplingOptions,
    TextStream,
    chat_prompt_ids,
    generate_reply,
    sampling_generator,
)


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


def _stderr(s: str) -> None:
    sys.stderr.write(s)
    sys.stderr.flush()


def not_utf8(text: str) -> str | None:
    """Why `text` is not text the tokenizer can take, or None. Bytes that are not UTF-8 (a GBK file on
    stdin, a GBK terminal) reach Python as lone surrogates (`surrogateescape`, argv always; stdin in the
    C locale and in `steel chat`); the tokenizer refused them with a bare `TypeError: TextEncodeInput`."""
    for i, c in enumerate(text):
        if "\ud800" <= c <= "\udfff":
            byte = f"byte 0x{ord(c) - 0xDC00:02X}" if "\udc80" <= c <= "\udcff" else f"U+{ord(c):04X}"
            return f"not UTF-8 text ({byte} at character {i}); convert it first, e.g. iconv -f gbk -t utf-8"
    return None


def input_normalizer() -> Normalizer:
    """What `steel chat` and `generate --chat` apply to the user's text and the system prompt: SFT's default
    `data.normalize`, so a prompt has the form the model was trained on."""
    from steel.sft.data import SftDataConfig

    return Normalizer(SftDataConfig().normalize)


def chat_loop(
    model,
    tokenizer,
    opts: SamplingOptions,
    lines: Iterable[str],
    write: Callable[[str], object],
    system: str | None = None,
    max_context: int = 2048,
    interactive: bool = False,
    notify: Callable[[str], object] = _stderr,
) -> list[dict]:
    """Run the conversation over `lines`; returns the final history. Replies go to `write`, notices
    about the context (dropped turns, cut replies, messages too long) to `notify`."""
    # Leave room for the reply inside the context, but never more than half of it: a large
    # --max-new-tokens must not leave the history no room at all (the reply is cut at the limit anyway).
    budget = max_context - min(opts.max_new_tokens, max_context // 2)
    normalize = input_normalizer()
    if system and (why := not_utf8(system)) is not None:
        raise UserError(f"--system: {why}")
    system = normalize(system) if system else system
    base = [{"role": "system", "content": system}] if system else []
    if system:
        n = len(chat_prompt_ids(tokenizer, base + [{"role": "user", "content": ""}]))
        if n > budget:
            raise UserError(
                f"--system: the system prompt takes {n} tokens, more than the {budget} the history may use "
                f"in a {max_context}-token context (max context minus the reply's room)"
            )
    history = list(base)
    # NOTE: one RNG for the whole conversation: a generator seeded afresh at every turn gave a repeated
    # prompt (after /reset) the same "random" reply; so seeded, the whole transcript is reproducible.
    generator = sampling_generator(opts)
    if interactive:
        write("(steel chat: /reset to start over, /exit or Ctrl-D to quit)\n>>> ")
    for n, line in enumerate(lines, 1):
        if (why := not_utf8(line)) is not None:
            notify(f"(steel chat: line {n} not sent: {why})\n")
            if interactive:
                write(">>> ")
            continue
        text = normalize(line)
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            history = list(base)
            write("(history cleared)\n")
        elif text:
            kept, ids = fit_history(tokenizer, history + [{"role": "user", "content": text}], budget)
            if len(ids) > budget:
                notify(
                    f"(steel chat: message not sent: it needs {len(ids)} tokens"
                    + (" with the system prompt" if system else "")
                    + f", the history may use {budget} of the {max_context}-token context)\n"
                )
            else:
                dropped = len(history) + 1 - len(kept)
                if dropped:
                    kept_system = "; the system prompt is kept" if system else ""
                    notify(
                        f"(steel chat: history over the {max_context}-token context: dropped the oldest "
                        f"{dropped // 2} exchange(s){kept_system})\n"
                    )
                history = kept
                reply = generate_reply(
                    model, tokenizer, ids, opts, TextStream(tokenizer, write), max_length=max_context,
                    generator=generator,
                )
                write("\n")
                if reply.stop_reason == "max_positions":
                    notify(f"(steel chat: reply cut at the end of the {max_context}-token context)\n")
                history.append({"role": "assistant", "content": reply.text})
        if interactive:
            write(">>> ")
    return history


def run_chat(model, tokenizer, opts: SamplingOptions, system: str | None, max_context: int) -> int:
    def write(s: str) -> None:
        sys.stdout.write(s)
        sys.stdout.flush()

    # Bytes that are not UTF-8 become lone surrogates, so that one such line is skipped with a notice
    # (`not_utf8`) instead of a UnicodeDecodeError ending the conversation.
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="surrogateescape")
    chat_loop(model, tokenizer, opts, sys.stdin, write, system, max_context, interactive=sys.stdin.isatty())
    return 0
