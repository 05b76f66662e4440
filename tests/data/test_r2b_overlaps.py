"""`prepare.check_overlaps`: what "two sources read one file the same way" is. The way is the reader's (the
format it goes by, the settings that format uses) plus the filters that apply; the file is the file, whatever
name reaches it (a hard link too)."""

from __future__ import annotations

import logging
import os

import pytest

from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig
from steel.data.prepare import prepare
from steel.data.sources import expand_paths

DOCS = ["short one", "a much longer document, well over forty characters", "tiny", "another long document, "
        "also well over forty characters"]


def _write(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jsonl").write_text("".join(f'{{"text": "{d}"}}\n' for d in DOCS))


def _cfg(tmp_path, tok, sources, **kw) -> DataConfig:
    return from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": str(tok), "workers": 1, "sources": sources,
                                  **kw})


def test_two_sources_splitting_one_file_by_filters_are_allowed(tmp_path, qwen_tokenizer_dir, caplog):
    # Each source keeps its own part of the file (long documents weighted 2, short 0.5): no document is read
    # twice into the output. Before: refused as "read twice, with the same settings". It is said, once.
    _write(tmp_path)
    filters = [{"name": "length", "min_chars": 40, "sources": ["long"]},
               {"name": "length", "max_chars": 39, "sources": ["short"], "label": "too_long"}]
    sources = [{"name": "long", "path": ["a/x.jsonl"], "weight": 2.0},
               {"name": "short", "path": ["a/x.jsonl"], "weight": 0.5}]
    with caplog.at_level(logging.WARNING, logger="test.steel.data.r2b"):
        m = prepare(_cfg(tmp_path, qwen_tokenizer_dir, sources, filters=filters), tmp_path / "out", quiet=True,
                    log=logging.getLogger("test.steel.data.r2b"))
    said = [r.getMessage() for r in caplog.records if "other filters" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("sources[1] (short) reads 1 file(s) that sources[0] (long) reads")
    got = {n: (s["read"], s["kept"], s["filtered"]) for n, s in m["sources"].items()}
    assert got == {"long": (4, 2, {"length": 2, "dedup_exact": 0, "dedup_near": 0}),
                   "short": (4, 2, {"too_long": 2, "dedup_exact": 0, "dedup_near": 0})}


@pytest.mark.parametrize("second", [
    {"format": "jsonl"},  # format: auto detects jsonl from the name: the same reader
    {"format": "jsonl.zst"},  # one reader for jsonl, .zst and .gz (compression told by the magic number)
    {"csv_delimiter": ";"},  # CSV settings are not used on a JSONL file
    {"csv_quoting": "none"},
    {"txt_unit": "line"},  # nor txt's
])
def test_settings_the_format_does_not_use_do_not_make_another_way(tmp_path, qwen_tokenizer_dir, second):
    # Before: allowed, and every document of x.jsonl was read twice (dedup off: kept twice).
    _write(tmp_path)
    sources = [{"name": "all", "path": ["a/*.jsonl"]}, {"name": "x", "path": ["a/x.jsonl"], **second}]
    cfg = _cfg(tmp_path, qwen_tokenizer_dir, sources, dedup={"exact": False, "near": False})
    with pytest.raises(ConfigError, match=r"sources\[1\]\.path \(source 'x'\) matches .*x\.jsonl, which "
                                          r"sources\[0\] \(source 'all'\) reads too"):
        prepare(cfg, tmp_path / "out", quiet=True)


def test_a_hard_link_is_the_same_file(tmp_path, qwen_tokenizer_dir):
    # Before: a hard link (a `cp -al` snapshot beside its original) was another file: read twice.
    _write(tmp_path)
    (tmp_path / "snap").mkdir()
    os.link(tmp_path / "a" / "x.jsonl", tmp_path / "snap" / "x.jsonl")
    sources = [{"name": "orig", "path": ["a/*.jsonl"]}, {"name": "snap", "path": ["snap/*.jsonl"]}]
    cfg = _cfg(tmp_path, qwen_tokenizer_dir, sources, dedup={"exact": False, "near": False})
    with pytest.raises(ConfigError, match=r"source 'snap'\) matches .*snap/x\.jsonl, which sources\[0\]"):
        prepare(cfg, tmp_path / "out", quiet=True)


def test_a_csv_and_a_tsv_setting_that_resolve_alike_are_one_way(tmp_path, qwen_tokenizer_dir):
    # On a .tsv the default delimiter "," reads tabs; on a .csv `csv_quoting: auto` is minimal.
    (tmp_path / "t.tsv").write_text("text\nun deux trois\n")
    (tmp_path / "c.csv").write_text("text\nun deux trois\n")
    for path, second in (("t.tsv", {"csv_delimiter": "\t"}), ("c.csv", {"csv_quoting": "minimal"})):
        sources = [{"name": "a", "path": [path]}, {"name": "b", "path": [path], **second}]
        with pytest.raises(ConfigError, match=r"source 'b'\) matches .*, which sources\[0\] \(source 'a'\) reads"):
            prepare(_cfg(tmp_path, qwen_tokenizer_dir, sources), tmp_path / "out", quiet=True)


def test_a_hard_link_matched_twice_by_one_source_is_read_once(tmp_path):
    # Before: only a symlink and its target were one file (by real path); two hard links were read twice.
    _write(tmp_path)
    (tmp_path / "snap").mkdir()
    os.link(tmp_path / "a" / "x.jsonl", tmp_path / "snap" / "x.jsonl")
    (tmp_path / "snap" / "y.jsonl").write_text('{"text": "only here"}\n')
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["*/*.jsonl"]}]})
    got = expand_paths(cfg.sources[0], tmp_path, 0)
    assert [p.relative_to(tmp_path).as_posix() for p in got] == ["a/x.jsonl", "snap/y.jsonl"]
