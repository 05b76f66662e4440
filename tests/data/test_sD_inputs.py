"""Adversarial inputs to `steel data prepare`: UTF-16/32 files, null text fields, a directory given as a
path, one file read by two sources the same way."""

from __future__ import annotations

import codecs
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig
from steel.data.prepare import prepare
from steel.data.sources import SourceReader, expand_paths


def reader(**src) -> SourceReader:
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["x"], **src}]})
    return SourceReader(cfg.sources[0], cfg)


def items(r: SourceReader, path) -> list[tuple]:
    return [(it.line, it.doc, it.reason) for it in r.read_file(path)]


@pytest.mark.parametrize("name, encoding, bom, src", [
    ("a.jsonl", "utf-16-le", codecs.BOM_UTF16_LE, {}),
    ("a.jsonl", "utf-16-be", codecs.BOM_UTF16_BE, {}),
    ("a.jsonl", "utf-32-le", codecs.BOM_UTF32_LE, {}),
    ("a.json", "utf-16-le", codecs.BOM_UTF16_LE, {}),
    ("a.csv", "utf-16-le", codecs.BOM_UTF16_LE, {}),
    ("a.txt", "utf-16-le", codecs.BOM_UTF16_LE, {"txt_unit": "line"}),
    ("a.jsonl.gz", "utf-16-le", codecs.BOM_UTF16_LE, {}),
])
def test_a_utf16_or_utf32_file_is_one_clear_rejection(tmp_path, name, encoding, bom, src):
    # Before: read as UTF-8, a 3-record UTF-16 JSONL file was 4 rejections (its lines cut at the wrong bytes)
    # and a UTF-16 CSV's rows were all "missing_field: no field 'text'", though the column is there.
    text = {"a.csv": "text\nun\ndeux\ntrois\n", "a.txt": "un\ndeux\ntrois\n",
            "a.json": json.dumps([{"text": t} for t in ("un", "deux", "trois")])}.get(
        name, "".join(json.dumps({"text": t}) + "\n" for t in ("un", "deux", "trois")))
    data = bom + text.encode(encoding)
    p = tmp_path / name
    p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    got = list(reader(**src).read_file(p))
    assert [(it.line, it.doc, it.reason) for it in got] == [(0, None, "invalid_utf8")]
    assert encoding.upper() in got[0].detail and "byte order mark" in got[0].detail


def test_a_utf8_bom_file_still_reads(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(codecs.BOM_UTF8 + b'{"text": "un"}\n{"text": "deux"}\n')
    assert items(reader(), p) == [(1, "un", None), (2, "deux", None)]


def test_a_null_text_is_reported_as_null_not_as_a_missing_column(tmp_path):
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": pa.array(["un", None])}), p)
    got = list(reader().read_file(p))
    assert [(it.line, it.doc, it.reason) for it in got] == [(1, "un", None), (2, None, "missing_field")]
    assert got[1].detail == "field 'text' is null"  # was "no field 'text'": the column is there
    q = tmp_path / "b.jsonl"
    q.write_text('{"other": 1}\n')
    assert [it.detail for it in reader().read_file(q)] == ["no field 'text'"]
    c = tmp_path / "c.jsonl"
    c.write_text('{"instruction": null, "output": "a"}\n{"output": "a"}\n{"conversations": null}\n')
    assert [it.detail for it in reader(kind="chat").read_file(c)][:2] == ["field 'instruction' is null",
                                                                          "no field 'instruction'"]
    assert [it.detail for it in reader(kind="chat", chat_layout="sharegpt").read_file(c)][2] == \
        "field 'conversations' is null"


def test_a_directory_as_a_path_is_named_a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["d"]}]})
    with pytest.raises(ConfigError, match=r"sources\[0\]\.path\[0\]: .*d is a directory"):
        expand_paths(cfg.sources[0], tmp_path, 0)  # was "no file matches .../d", a path that exists


def _cfg(tmp_path, tok, sources, **kw) -> DataConfig:
    return from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": str(tok), "workers": 1, "sources": sources,
                                  **kw})


def test_one_file_read_by_two_sources_the_same_way_is_refused(tmp_path, qwen_tokenizer_dir):
    (tmp_path / "all").mkdir()
    (tmp_path / "all" / "wiki.jsonl").write_text('{"text": "alpha beta gamma"}\n{"text": "delta epsilon"}\n')
    (tmp_path / "all" / "web.jsonl").write_text('{"text": "zeta eta theta"}\n')
    # overlapping globs: before, with dedup off, wiki.jsonl's documents were kept twice (read 5, kept 5)
    sources = [{"name": "all", "path": ["all/*.jsonl"]}, {"name": "wiki", "path": ["all/wiki*.jsonl"]}]
    cfg = _cfg(tmp_path, qwen_tokenizer_dir, sources, dedup={"exact": False, "near": False})
    with pytest.raises(ConfigError, match=r"sources\[1\]\.path \(source 'wiki'\) matches .*wiki\.jsonl, which "
                                          r"sources\[0\] \(source 'all'\) reads too"):
        prepare(cfg, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_one_file_read_by_two_sources_in_different_ways_is_allowed(tmp_path, qwen_tokenizer_dir):
    (tmp_path / "qa.jsonl").write_text('{"q": "what is steel", "a": "an alloy of iron"}\n')
    sources = [{"name": "q", "path": ["qa.jsonl"], "text_field": "q"},
               {"name": "a", "path": ["qa.jsonl"], "text_field": "a"}]
    m = prepare(_cfg(tmp_path, qwen_tokenizer_dir, sources), tmp_path / "out", quiet=True)
    assert [(s["read"], s["kept"]) for s in m["sources"].values()] == [(1, 1), (1, 1)]


def test_a_csv_whose_read_column_is_duplicated_is_refused_not_read_from_the_last(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("id,text,text,,\n1,first,second,,\n")
    got = list(reader().read_file(p))
    # was [(2, "second", None)]: the row's dict kept the last 'text' cell, silently
    assert [(it.line, it.doc, it.reason) for it in got] == [(0, None, "unreadable_file")]
    assert "column 'text' appears 2 times" in got[0].detail
    q = tmp_path / "b.csv"
    q.write_text("question,answer,answer\nwhat,yes,no\n")
    chat = reader(kind="chat", fields={"instruction": "question", "output": "answer"})
    assert [(it.line, it.reason) for it in chat.read_file(q)] == [(0, "unreadable_file")]
    # a duplicated column that the source does not read (two blank header cells) is no matter
    assert items(reader(text_field="id"), p) == [(2, "1", None)]


def test_a_root_or_file_name_with_glob_characters_is_found(tmp_path):
    root = tmp_path / "data[2024]"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jsonl", "b.jsonl", "sub/c[1].jsonl"):
        (root / name).write_text('{"text": "x"}\n')
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["a.jsonl", "*.jsonl", "sub/c[1].jsonl"]}]})
    # was "sources[0].path[0]: no file matches .../data[2024]/a.jsonl": the root was read as a pattern
    got = expand_paths(cfg.sources[0], root, 0)
    assert [p.relative_to(root).as_posix() for p in got] == ["a.jsonl", "b.jsonl", "sub/c[1].jsonl"]
    bad = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["*.csv"]}]})
    with pytest.raises(ConfigError, match=r"no file matches .*data\[2024\]/\*\.csv"):
        expand_paths(bad.sources[0], root, 0)
