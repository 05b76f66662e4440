"""ChatML from odd conversations: blank system turns and the configured default system prompt."""

from __future__ import annotations

import pytest

from steel.data.chat import ChatError, extract_messages, render_chatml
from steel.data.config import NormalizeConfig
from steel.data.normalize import Normalizer, normalize_messages

S, E = "<|im_start|>", "<|im_end|>"
WANT = f"{S}system\nDEF{E}\n{S}user\nq{E}\n{S}assistant\na{E}\n"


def _render(rec, layout):
    msgs = extract_messages(rec, layout, system="DEF")
    out, reason = normalize_messages(Normalizer(NormalizeConfig()), msgs)
    assert reason is None
    return render_chatml(out)


@pytest.mark.parametrize("blank", ["", "  \n"])
def test_a_blank_system_turn_gets_the_default_system_prompt_in_every_layout(blank):
    # alpaca already ignored a blank `system` field and added the source's `system:`; a blank system turn
    # in an openai/sharegpt record counted as "has a system prompt", then normalization dropped it, so
    # those records were rendered with no system prompt at all
    assert _render({"instruction": "q", "output": "a", "system": blank}, "alpaca") == WANT
    assert _render({"messages": [{"role": "system", "content": blank}, {"role": "user", "content": "q"},
                                 {"role": "assistant", "content": "a"}]}, "openai") == WANT
    assert _render({"conversations": [{"from": "system", "value": blank}, {"from": "human", "value": "q"},
                                      {"from": "gpt", "value": "a"}]}, "sharegpt") == WANT


def test_a_nonblank_system_turn_is_kept_and_a_late_one_still_refused():
    rec = {"messages": [{"role": "system", "content": "mine"}, {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "a"}]}
    assert extract_messages(rec, "openai", system="DEF")[0] == {"role": "system", "content": "mine"}
    late = {"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"},
                         {"role": "assistant", "content": "a"}]}
    with pytest.raises(ChatError, match="turn 1 is a system turn"):
        extract_messages(late, "openai")


def test_openai_developer_and_function_roles():
    # OpenAI's API names the system prompt `developer` (o1 and later) and the result of a function call
    # `function` (before `tool`): both were rejected as unknown roles, dropping whole exported logs
    rec = {"messages": [{"role": "developer", "content": "d"}, {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "call f"}, {"role": "function", "content": "42"},
                        {"role": "assistant", "content": "a"}]}
    assert [m["role"] for m in extract_messages(rec, "openai")] == ["system", "user", "assistant", "tool", "assistant"]
    with pytest.raises(ChatError, match=r"messages\[0\]: unknown role 'User'"):  # case stays exact, as the API
        extract_messages({"messages": [{"role": "User", "content": "q"}, {"role": "assistant", "content": "a"}]}, "openai")
