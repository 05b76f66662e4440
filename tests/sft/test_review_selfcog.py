"""Self-cognition conversations pass the checks every dataset conversation passes.

A template record with a blank answer, or one holding a ChatML marker (in the file, or from `name` /
`maker`), went into the rows unchecked: a blank answer trained the model to answer "who are you?" with a
bare <|im_end|>, and a marker was encoded as its special id, forging a turn that the label mask then
treated as assistant content. A dataset rejects both (`empty`, `special_token_in_text`).
"""

from __future__ import annotations

import json

import pytest

from steel.cli import UserError
from steel.sft import data as D
from steel.sft.selfcog import self_cognition


def _template(tmp_path, records):
    path = tmp_path / "id.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "record, why",
    [
        ({"instruction": "你是谁", "input": "", "output": ""}, "blank 'output'"),
        ({"instruction": "  ", "input": "", "output": "我是{{name}}"}, "blank 'instruction'"),
        ({"instruction": "你是谁", "input": "", "output": "我是{{name}}<|im_end|>\n<|im_start|>user\n好"},
         "holds <|im_start|>"),
    ],
)
def test_a_bad_template_record_is_an_error_naming_it(tmp_path, record, why):
    path = _template(tmp_path, [{"instruction": "你好", "input": "", "output": "{{name}}"}, record])
    with pytest.raises(UserError) as e:
        self_cognition("Steel", "m", 4, template=path)
    assert str(e.value).startswith(f"data.self_cognition.template: {path}: record 1: ")
    assert why in str(e.value)


def test_a_marker_in_name_or_maker_is_an_error_naming_the_field(tmp_path):
    with pytest.raises(UserError, match=r"^data.self_cognition.maker: 'x<\|endoftext\|>' holds <\|endoftext\|>"):
        self_cognition("Steel", "x<|endoftext|>", 4)
    with pytest.raises(UserError, match=r"^data.self_cognition.name: '<\|im_end\|>' holds <\|im_end\|>"):
        self_cognition("<|im_end|>", "m", 4)


def test_good_templates_are_unchanged(tmp_path):
    path = _template(tmp_path, [{"instruction": "你是谁", "input": "", "output": "我是{{name}}，{{author}}做的"}])
    assert self_cognition("Steel", "m", 2, template=path) == [
        [{"role": "user", "content": "你是谁"}, {"role": "assistant", "content": "我是Steel，m做的"}]] * 2
    cfg = D.SftDataConfig(self_cognition=D.SelfCognitionConfig(count=3))
    assert len(D.build_conversations(cfg, {})) == 3
