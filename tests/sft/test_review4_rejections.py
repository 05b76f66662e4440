"""Rejected SFT records are a warning naming file:line, a file that does not parse included."""

from __future__ import annotations

import json
import logging

from steel.config import from_dict
from steel.sft import data as D


def test_a_dataset_file_that_does_not_parse_is_a_warning_naming_it(tmp_path, caplog):
    # p0: 10 records, the first 6 without an answer (the first five rejections filled `examples`);
    # p1: 50 records cut short, so the whole file is one `malformed_json` rejection.
    p0 = [{"instruction": f"q{i}", "output": "" if i < 6 else f"a{i}"} for i in range(10)]
    (tmp_path / "p0.json").write_text(json.dumps(p0), encoding="utf-8")
    p1 = json.dumps([{"instruction": f"q{i}", "output": f"a{i}"} for i in range(50)], indent=1)
    (tmp_path / "p1.json").write_text(p1[: len(p1) // 2], encoding="utf-8")
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": [{"name": "parts", "path": ["p*.json"]}]})
    stats = {}
    mix = D.build_conversations(cfg, stats)
    with caplog.at_level(logging.INFO, logger="steel"):
        D.warn_rejections(cfg, stats)
    st = stats["datasets"]["parts"]
    assert len(mix) == 4 and st["read"] == 11 and st["rejected"] == {"empty": 6, "malformed_json": 1}
    assert [e.split(" rejected (")[0] for e in st["examples"]] == [f"{tmp_path}/p0.json:{i}" for i in range(1, 6)] + [
        f"{tmp_path}/p1.json:{p1[: len(p1) // 2].count(chr(10)) + 1}"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("data.datasets[0] (parts): 7 of 11 records rejected (empty: 6, malformed_json: 1): ")
    assert f"{tmp_path}/p1.json:" in warnings[0] and "rejected (malformed_json): the JSON file does not parse" in warnings[0]


def test_a_dataset_without_rejections_gives_no_warning(tmp_path, caplog):
    (tmp_path / "a.json").write_text(json.dumps([{"instruction": "q", "output": "a"}]), encoding="utf-8")
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": [{"name": "a", "path": ["a.json"]}]})
    stats = {}
    D.build_conversations(cfg, stats)
    with caplog.at_level(logging.INFO, logger="steel"):
        D.warn_rejections(cfg, stats)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_conversations_dropped_for_length_are_a_warning(tmp_path, caplog, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    recs = [{"instruction": "q", "output": "a" * (40 if i < 2 else 1)} for i in range(5)]
    (tmp_path / "a.json").write_text(json.dumps(recs), encoding="utf-8")
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "seq_len": 32, "packing": False,
                                      "datasets": [{"name": "a", "path": ["a.json"], "weight": 2}]})
    stats = {}
    ids, _ = D.build_sft_rows(cfg, tok, stats)
    assert len(ids) == 6  # 3 short conversations x 2; the 2 long ones (x 2) do not fit in 32 byte tokens
    with caplog.at_level(logging.INFO, logger="steel"):
        D.warn_rejections(cfg, stats)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["data.datasets[0] (a): 4 of 10 sampled conversations are longer than data.seq_len 32 "
                        "tokens: dropped"]
