"""`record_path: "[*]"` and no record_path on one JSON array file read the same records: the json reader takes a
JSON array's items as the records. Two sources reading the file so (one of them to weight it more) read every
record twice; `check_overlaps` keyed the way by the record_path's spelling and let it through. So it did for
two spellings of one path (`data[*]`, `data.[*]`)."""

from __future__ import annotations

import json

import pytest

from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig
from steel.data.prepare import check_overlaps
from steel.data.sources import SourceReader, expand_paths

DOCS = [{"text": f"document number {k}"} for k in range(3)]


def _files(tmp_path, cfg):
    return [(i, p, p.name) for i, s in enumerate(cfg.sources) for p in expand_paths(s, tmp_path, i)]


def _docs(cfg, i, path):
    return [it.doc for it in SourceReader(cfg.sources[i], cfg).read_file(path) if it.doc is not None]


@pytest.mark.parametrize("order", [0, 1])
def test_star_and_no_record_path_on_a_json_array_is_refused(tmp_path, order):
    (tmp_path / "a.json").write_text(json.dumps(DOCS, indent=1), encoding="utf-8")
    sources = [{"name": "all", "path": ["*.json"]}, {"name": "up", "path": ["a.json"], "record_path": "[*]",
                                                    "weight": 2.0}]
    sources = sources[::-1] if order else sources
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "sources": sources})
    files = _files(tmp_path, cfg)
    # the reference: both read the same documents
    assert _docs(cfg, 0, tmp_path / "a.json") == _docs(cfg, 1, tmp_path / "a.json") == [d["text"] for d in DOCS]
    first, second = [s["name"] for s in sources]
    with pytest.raises(ConfigError, match=rf"sources\[1\].path \(source '{second}'\) matches .*a.json, which "
                                          rf"sources\[0\] \(source '{first}'\) reads too, with the same settings and "
                                          r"filters \(record_path '\[\*\]' reads a JSON array's items"):
        check_overlaps(cfg, files)
    cfg.sources[1 - order].text_field = "body"  # another reading: allowed, as before
    check_overlaps(cfg, files)


def test_star_on_json_lines_is_another_reading(tmp_path):
    """On JSON Lines, `[*]` finds nothing in an object line: not the records a source without it reads."""
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "sources": [
        {"name": "all", "path": ["*.jsonl"]}, {"name": "up", "path": ["a.jsonl"], "record_path": "[*]"}]})
    assert _docs(cfg, 1, tmp_path / "a.jsonl") == []
    check_overlaps(cfg, _files(tmp_path, cfg))


def test_two_spellings_of_one_record_path_are_one_reading(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"data": DOCS}), encoding="utf-8")
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "sources": [
        {"name": "all", "path": ["*.json"], "record_path": "data[*]"},
        {"name": "up", "path": ["a.json"], "record_path": "data.[*]"}]})
    assert _docs(cfg, 0, tmp_path / "a.json") == _docs(cfg, 1, tmp_path / "a.json") == [d["text"] for d in DOCS]
    with pytest.raises(ConfigError, match=r"reads too, with the same settings and filters \(record_path 'data\[\*\]' "
                                          r"and 'data.\[\*\]' are one path\)"):
        check_overlaps(cfg, _files(tmp_path, cfg))
