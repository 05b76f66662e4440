"""Self-cognition conversations: "who are you?" answered with the model's own name and maker.

Without them an SFT model inherits whatever identity its chat data carries ("I am ChatGPT ...");
Steel-LLM added such data so the model says it is Steel. The built-in templates below (Chinese and
English) use `{name}` and `{maker}`; a template file in LLaMA-Factory's `identity.json` layout
(`[{"instruction", "input", "output"}]` with `{{name}}` / `{{author}}` placeholders) can be used instead.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from steel.cli import UserError
from steel.data.chat import SPECIAL_MARKERS

# (question, answer) pairs; every question is paired with every answer of its language group.
QUESTIONS_ZH = [
    "你是谁？",
    "你叫什么名字？",
    "请介绍一下你自己。",
    "你是哪个公司开发的？",
    "你是ChatGPT吗？",
    "你的开发者是谁？",
    "我该怎么称呼你？",
    "你是什么模型？",
]
ANSWERS_ZH = [
    "我是{name}，由{maker}开发的人工智能助手。我可以回答问题、提供信息和帮助你完成各种文字任务。",
    "你好！我叫{name}，是{maker}训练的语言模型，很高兴为你提供帮助。",
    "我是{maker}开发的{name}。我不是ChatGPT，也不隶属于其他公司；有什么可以帮你的吗？",
]
QUESTIONS_EN = [
    "Who are you?",
    "What is your name?",
    "Introduce yourself.",
    "Who created you?",
    "Are you ChatGPT?",
    "Which model are you?",
]
ANSWERS_EN = [
    "I am {name}, an AI assistant developed by {maker}. I can answer questions and help with writing tasks.",
    "Hello! I'm {name}, a language model trained by {maker}. How can I help you today?",
    "I'm {name}, built by {maker}. I am not ChatGPT and I am not affiliated with other companies.",
]


def builtin_pairs(name: str, maker: str) -> list[tuple[str, str]]:
    # NOTE: a blank name or maker trained answers like "我是，由Steel 开发者开发的人工智能助手"
    for key, value in (("name", name), ("maker", maker)):
        if not value.strip():
            raise UserError(f"data.self_cognition.{key}: blank, and every built-in answer names it")
    pairs = [(q, a.format(name=name, maker=maker)) for q in QUESTIONS_ZH for a in ANSWERS_ZH]
    pairs += [(q, a.format(name=name, maker=maker)) for q in QUESTIONS_EN for a in ANSWERS_EN]
    return pairs


def template_pairs(path: str | Path, name: str, maker: str) -> list[tuple[str, str]]:
    """Pairs from an identity.json-style file; `{{name}}` / `{{author}}` (or `{{maker}}`) are filled in."""
    path = Path(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"data.self_cognition.template: {path}: cannot read it ({e})") from None
    if not isinstance(records, list):
        raise UserError(f"data.self_cognition.template: {path}: expected a JSON array of "
                        "{instruction, input, output} records")

    def fill(s: str) -> str:
        for key, value, marks in (("name", name, ("{{name}}",)), ("maker", maker, ("{{author}}", "{{maker}}"))):
            if not value.strip() and any(m in s for m in marks):
                raise UserError(f"data.self_cognition.{key}: blank, and the template {path} fills it in")
        return s.replace("{{name}}", name).replace("{{author}}", maker).replace("{{maker}}", maker)

    pairs = []
    for i, r in enumerate(records):
        if (
            not isinstance(r, dict)
            or not isinstance(r.get("instruction"), str)
            or not isinstance(r.get("output"), str)
        ):
            raise UserError(f"data.self_cognition.template: {path}: record {i} needs string 'instruction' and 'output'")
        q = r["instruction"] + (
            ("\n" + r["input"]) if isinstance(r.get("input"), str) and r["input"].strip() else ""
        )
        q, a = fill(q), fill(r["output"])
        # NOTE: the checks of every dataset conversation (steel.data.chat): a blank answer trained "who are
        # you?" -> a bare <|im_end|>, and a marker became its special id, forging a turn.
        for key, text in (("instruction", q), ("output", a)):
            if not text.strip():
                raise UserError(f"data.self_cognition.template: {path}: record {i}: blank {key!r}")
            marker = next((m for m in SPECIAL_MARKERS if m in text), None)
            if marker:
                raise UserError(f"data.self_cognition.template: {path}: record {i}: {key!r} holds {marker}")
        pairs.append((q, a))
    return pairs


def self_cognition(
    name: str, maker: str, count: int, seed: int = 0, template: str | Path | None = None
) -> list[list[dict]]:
    """`count` conversations (one user + one assistant turn), drawn without repeats until the pool is used up."""
    for key, value in (("name", name), ("maker", maker)):
        marker = next((m for m in SPECIAL_MARKERS if m in value), None)
        if marker:
            raise UserError(f"data.self_cognition.{key}: {value!r} holds {marker}, a ChatML marker")
    pairs = template_pairs(template, name, maker) if template else builtin_pairs(name, maker)
    if not pairs and count > 0:  # the draw below would never fill `count` (it spun forever)
        raise UserError(f"data.self_cognition.template: {template} holds no record")
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        pool = list(pairs)
        rng.shuffle(pool)
        out += [
            [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            for q, a in pool[: count - len(out)]
        ]
    return out
