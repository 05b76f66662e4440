"""Chat records (ShareGPT, Alpaca(+history), OpenAI messages) -> a message list -> ChatML text.

Steel mixed chat data into pretraining as ChatML; the rendered document is

    <|im_start|>system\\n{system}<|im_end|>\\n        (only when there is a system prompt)
    <|im_start|>user\\n{user}<|im_end|>\\n
    <|im_start|>assistant\\n{assistant}<|im_end|>\\n ...

the same layout as Qwen's chat template. The markers become their special token ids at
tokenization (`steel.data.tokenize`), never ordinary text, so a record whose content already
contains a marker is rejected (`special_token_in_text`) instead of being parsed as structure.
"""

from __future__ import annotations

from typing import Any

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_MARKERS = (IM_START, IM_END, ENDOFTEXT)

# The fields each layout reads, with their default names in the record (renamed by `fields:`).
LAYOUT_FIELDS: dict[str, dict[str, str]] = {
    "alpaca": {"instruction": "instruction", "input": "input", "output": "output", "system": "system", "history": "history"},
    "sharegpt": {"conversations": "conversations", "role": "from", "content": "value", "system": "system"},
    "openai": {"messages": "messages", "role": "role", "content": "content"},
}

# ShareGPT speaker names seen in the wild -> ChatML roles.
_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
    "bard": "assistant", "bing": "assistant", "model": "assistant", "system": "system",
    "tool": "tool", "function": "tool", "observation": "tool", "function_call": "assistant",
}

# OpenAI's other names: `developer` is the system prompt of o1 and later, `function` the result of a
# function call before `tool` replaced it.
_OPENAI_ROLES = {"developer": "system", "function": "tool"}


class ChatError(ValueError):
    """A record that cannot be read as a conversation; `reason` is the manifest's rejection key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


_MISSING = object()


def get_field(record: Any, dotted: str) -> Any:
    """`a.b.0.c` -> record["a"]["b"][0]["c"]; returns `_MISSING` (not an error) when absent.

    A field whose name holds the dots (`record["a.b"]`) is found by that name where no nested field is.
    NOTE: flattened data names its columns so (HF datasets' `flatten()`, pandas' `json_normalize`: a CSV or
    parquet column `meta.body`), and `text_field: meta.body` rejected every row as "no field 'meta.body'"."""
    node = _nested(record, dotted)
    if node is _MISSING and "." in dotted and isinstance(record, dict) and dotted in record:
        return record[dotted]
    return node


def _nested(record: Any, dotted: str) -> Any:
    node = record
    for part in dotted.split("."):
        if isinstance(node, dict):
            if part not in node:
                return _MISSING
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            i = int(part)
            if not -len(node) <= i < len(node):
                return _MISSING
            node = node[i]
        else:
            return _MISSING
    return node


def _text(record: Any, dotted: str, required: bool) -> str:
    value = get_field(record, dotted)
    if value is _MISSING or value is None:
        if required:
            raise ChatError("missing_field", f"no field {dotted!r}" if value is _MISSING else f"field {dotted!r} is null")
        return ""
    if not isinstance(value, str):
        raise ChatError("bad_field_type", f"field {dotted!r} is {type(value).__name__}, not a string")
    return value


def extract_messages(record: Any, layout: str | None, fields: dict[str, str] | None = None,
                     system: str | None = None) -> list[dict[str, str]]:
    """One record -> `[{"role", "content"}, ...]` with roles system/user/assistant/tool."""
    layout = layout or "alpaca"  # SourceConfig.chat_layout None = the default layout
    f = {**LAYOUT_FIELDS[layout], **(fields or {})}
    messages: list[dict[str, str]] = []
    if layout == "alpaca":
        sys_prompt = _text(record, f["system"], required=False)
        history = get_field(record, f["history"])
        if history is not _MISSING and history is not None:
            if not isinstance(history, list):
                raise ChatError("bad_chat", f"{f['history']!r} is not a list of [user, assistant] pairs")
            for i, turn in enumerate(history):
                if not (isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
                    raise ChatError("bad_chat", f"{f['history']}[{i}] is not a [user, assistant] pair of strings")
                messages += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
        instruction = _text(record, f["instruction"], required=True)
        extra = _text(record, f["input"], required=False)
        user = f"{instruction}\n{extra}" if extra.strip() else instruction
        messages += [{"role": "user", "content": user},
                     {"role": "assistant", "content": _text(record, f["output"], required=True)}]
        if sys_prompt.strip():
            messages.insert(0, {"role": "system", "content": sys_prompt})
    else:
        key = f["conversations"] if layout == "sharegpt" else f["messages"]
        turns = get_field(record, key)
        if turns is _MISSING or turns is None:
            raise ChatError("missing_field", f"no field {key!r}" if turns is _MISSING else f"field {key!r} is null")
        if not isinstance(turns, list):
            raise ChatError("bad_chat", f"{key!r} is {type(turns).__name__}, not a list")
        if layout == "sharegpt":
            sys_prompt = _text(record, f["system"], required=False)
            if sys_prompt.strip():
                messages.append({"role": "system", "content": sys_prompt})
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict):
                raise ChatError("bad_chat", f"{key}[{i}] is not an object")
            # dotted, as every other field (`fields: {content: value.text}`): dict.get found no such key, and
            # every record was rejected as bad_chat although the config accepted the name
            role = get_field(turn, f["role"])
            content = get_field(turn, f["content"])
            if not isinstance(role, str) or not isinstance(content, str):
                raise ChatError("bad_chat", f"{key}[{i}] needs string {f['role']!r} and {f['content']!r}")
            mapped = _ROLES.get(role.lower()) if layout == "sharegpt" else _OPENAI_ROLES.get(role, role)
            if mapped not in ("system", "user", "assistant", "tool"):
                raise ChatError("bad_chat", f"{key}[{i}]: unknown role {role!r}")
            if mapped == "system" and not content.strip():
                # no system prompt, as a blank alpaca/sharegpt `system` field: the source's `system:` applies
                # (kept, the turn counted as one, and normalization then dropped it: no system prompt at all)
                continue
            messages.append({"role": mapped, "content": content})
    if system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    roles = {m["role"] for m in messages}
    if "user" not in roles or "assistant" not in roles:
        raise ChatError("bad_chat", "a conversation needs a user and an assistant turn")
    for i, m in enumerate(messages):
        if m["role"] in ("user", "assistant") and not m["content"].strip():
            raise ChatError("empty", f"turn {i} ({m['role']}) is empty")
    check_turn_order(messages)
    for m in messages:
        for marker in SPECIAL_MARKERS:
            if marker in m["content"]:
                raise ChatError("special_token_in_text", f"a {m['role']} turn contains {marker}")
    return messages


def check_turn_order(messages: list[dict[str, str]]) -> None:
    """Raise `ChatError("bad_chat", <rule>)` unless the turns read [system] user assistant (user assistant)*.

    Tool turns answer an assistant turn (a function call) and are answered by one: assistant (tool)+ assistant.
    NOTE: nothing is merged or reordered. A record that breaks a rule (two user turns in a row, a question
    left without an answer) would teach the model a conversation shape it never sees at inference, so it is
    rejected and counted; the detail names the rule and the turn (indices count the system turn).
    """
    prev = None
    for i, m in enumerate(messages):
        role = m["role"]
        if role == "system":
            if i != 0:
                raise ChatError("bad_chat", f"turn order: turn {i} is a system turn; only the first turn may be")
        elif prev in (None, "system"):
            if role != "user":
                raise ChatError("bad_chat", f"turn order: the first turn after the system prompt is {role}, not user")
        elif role == prev and role != "tool":
            raise ChatError("bad_chat", f"turn order: turns {i - 1} and {i} are both {role} turns")
        elif role == "tool" and prev not in ("assistant", "tool"):
            raise ChatError("bad_chat", f"turn order: turn {i} is a tool turn after a {prev} turn, not an assistant one")
        elif prev == "tool" and role not in ("assistant", "tool"):
            raise ChatError("bad_chat", f"turn order: turn {i} is a {role} turn after a tool turn, not an assistant one")
        prev = role
    if prev != "assistant":
        raise ChatError("bad_chat", f"turn order: the conversation ends with a {prev} turn, without an assistant reply")


def conversation_text(messages: list[dict[str, str]]) -> str:
    """The text filters and dedup see of a conversation: its turns' contents, without system turns.

    A source's `system:` prompt (or one every record of a dataset carries) is boilerplate, not content:
    counted, it made short distinct Q&A pairs near-duplicates and let a length filter pass empty ones.
    """
    return "\n".join(m["content"] for m in messages if m["role"] != "system")


def render_chatml(messages: list[dict[str, str]]) -> str:
    return "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
