"""A blank self-cognition `name` or `maker` is an error where an answer would name it."""

from __future__ import annotations

import json

import pytest

from steel.cli import UserError
from steel.sft.selfcog import self_cognition


@pytest.mark.parametrize("name, maker, key", [("", "m", "name"), ("Steel", "  ", "maker")])
def test_a_blank_name_or_maker_in_the_builtin_answers_is_an_error(name, maker, key):
    # It trained answers such as "我是，由m开发的人工智能助手。"
    with pytest.raises(UserError, match=rf"^data\.self_cognition\.{key}: blank, and every built-in answer names it"):
        self_cognition(name, maker, 3)


def test_a_blank_maker_is_an_error_only_where_the_template_uses_it(tmp_path):
    path = tmp_path / "id.json"
    path.write_text(json.dumps([{"instruction": "你是谁", "input": "", "output": "我是{{name}}"}],
                               ensure_ascii=False), encoding="utf-8")
    assert self_cognition("Steel", "", 1, template=path) == [
        [{"role": "user", "content": "你是谁"}, {"role": "assistant", "content": "我是Steel"}]]
    path.write_text(json.dumps([{"instruction": "谁做的你", "input": "", "output": "我由{{author}}制作"}],
                               ensure_ascii=False), encoding="utf-8")
    with pytest.raises(UserError, match=rf"^data\.self_cognition\.maker: blank, and the template {path} fills it in"):
        self_cognition("Steel", "", 1, template=path)
