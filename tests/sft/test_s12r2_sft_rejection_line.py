"""A rejected SFT record's example (in the warning and in the no-usable-conversation error) reads as
`steel data prepare` logs one (`FILE:LINE rejected (empty): turn 1 (assistant) is empty`): it ran reason and
detail together ("FILE:LINE: empty turn 1 (assistant) is empty")."""

from __future__ import annotations

import json
import logging

import pytest

from steel.config import ConfigError, from_dict
from steel.sft import data as D


def test_rejection_example_reads_as_prepare(tmp_path, caplog):
    recs = [{"instruction": "q0", "output": "a0"}, {"instruction": "q1", "output": ""},
            {"instruction": "q2", "output": "a2"}]
    (tmp_path / "a.json").write_text(json.dumps(recs), encoding="utf-8")
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": [{"name": "a", "path": ["a.json"]}]})
    stats: dict = {}
    D.build_conversations(cfg, stats)
    line = f"{tmp_path}/a.json:2 rejected (empty): turn 1 (assistant) is empty"
    assert stats["datasets"]["a"]["examples"] == [line]
    with caplog.at_level(logging.INFO, logger="steel"):
        D.warn_rejections(cfg, stats)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"data.datasets[0] (a): 1 of 3 records rejected (empty: 1): {line}"]
    (tmp_path / "b.json").write_text(json.dumps([{"question": "q"}]), encoding="utf-8")  # no field `answer`
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": [
        {"name": "b", "path": ["b.json"], "fields": {"instruction": "question", "output": "answer"}}]})
    with pytest.raises(ConfigError) as e:
        D.build_conversations(cfg, {})
    assert str(e.value) == (
        f"data.datasets[0] (b): no usable conversation in 1 records (rejected missing_field: 1); first rejected: "
        f"{tmp_path}/b.json:1 rejected (missing_field): no field 'answer'; check chat_layout (alpaca) and fields")
