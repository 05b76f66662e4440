"""On a filesystem that ignores case (macOS, Windows volumes), a literal path in another case than the file's
name (`data/A.jsonl` for data/a.jsonl) beside a glob matching the file was two files: `file_id` keys a file by
its real path, and realpath keeps the case it is given there. The file was read twice (kept twice with dedup off,
refused by no overlap check). Such a filesystem is simulated: os.stat/os.lstat find a name in any case."""

from __future__ import annotations

import os

import pytest

from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig
from steel.data.prepare import check_overlaps
from steel.data.sources import expand_paths


@pytest.fixture
def ignore_case(monkeypatch, tmp_path):
    """Under tmp_path, a name that does not exist is found in another case, as a case-insensitive volume does."""

    def wrap(real):
        def stat(path, *a, **kw):
            try:
                return real(path, *a, **kw)
            except FileNotFoundError:
                head, name = os.path.split(os.fspath(path))
                if not head.startswith(str(tmp_path)) or not os.path.isdir(head):
                    raise
                match = [n for n in os.listdir(head) if n.casefold() == name.casefold()]
                if not match:
                    raise
                return real(os.path.join(head, match[0]), *a, **kw)
        return stat

    monkeypatch.setattr(os, "stat", wrap(os.stat))
    monkeypatch.setattr(os, "lstat", wrap(os.lstat))


def _files(tmp_path, sources):
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "sources": sources})
    return cfg, [(i, p, p.name) for i, s in enumerate(cfg.sources) for p in expand_paths(s, tmp_path, i)]


def test_a_wrong_case_literal_beside_a_glob_is_one_file(tmp_path, ignore_case):
    (tmp_path / "data").mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / "data" / name).write_text('{"text": "x"}\n', encoding="utf-8")
    _, files = _files(tmp_path, [{"name": "s", "path": ["data/*.jsonl", "data/A.jsonl"]}])
    assert [p.name for _, p, _ in files] == ["a.jsonl", "b.jsonl"]
    cfg, files = _files(tmp_path, [{"name": "s", "path": ["data/*.jsonl"]}, {"name": "up", "path": ["data/B.JSONL"]}])
    with pytest.raises(ConfigError, match=r"source 'up'\) matches .*B.JSONL, which sources\[0\] \(source 's'\) reads"):
        check_overlaps(cfg, files)


def test_case_sensitive_names_stay_two_files(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    (tmp_path / "data" / "A.jsonl").write_text('{"text": "y"}\n', encoding="utf-8")
    _, files = _files(tmp_path, [{"name": "s", "path": ["data/*.jsonl", "data/A.jsonl"]}])
    assert sorted(p.name for _, p, _ in files) == ["A.jsonl", "a.jsonl"]
