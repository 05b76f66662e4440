"""A file is read once whatever name reaches it, and two files are two files even where the filesystem gives
them one inode number: a QEMU 9p share over several host filesystems, or a FUSE mount passing a backend's ids,
can. Keyed by (st_dev, st_ino) alone, the second such file was dropped unread by `expand_paths` (silent data
loss) and refused by `check_overlaps` as a double read of the first. And two sources read a file the same way
when the settings they differ in are ones its reader does not use (text_field on txt, a chat field named as its
layout's default): refused as any double read."""

from __future__ import annotations

import json
import os
import stat as stat_mod

import pytest

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.prepare import prepare
from steel.data.sources import expand_paths


@pytest.fixture
def one_inode_number(monkeypatch):
    """os.stat and os.lstat report inode 4242 for every file whose name starts with 'clash'."""

    def clash(real):
        def stat(path, *a, **kw):
            st = real(path, *a, **kw)
            if os.path.basename(os.fspath(path)).startswith("clash") and stat_mod.S_ISREG(st.st_mode):
                return os.stat_result((st.st_mode, 4242, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
                                       int(st.st_atime), int(st.st_mtime), int(st.st_ctime)))
            return st
        return stat

    monkeypatch.setattr(os, "stat", clash(os.stat))
    monkeypatch.setattr(os, "lstat", clash(os.lstat))


def _source(paths):
    return from_dict(DataConfig, {"sources": [{"name": "s", "path": paths}]}).sources[0]


def test_two_files_with_one_inode_number_are_both_kept(tmp_path, one_inode_number):
    (tmp_path / "clash_a.jsonl").write_text('{"text": "first file"}\n')
    (tmp_path / "clash_b.jsonl").write_text('{"text": "second file"}\n')
    for stat in (os.stat, os.lstat):  # the setup
        assert stat(tmp_path / "clash_a.jsonl").st_ino == stat(tmp_path / "clash_b.jsonl").st_ino
    got = expand_paths(_source(["*.jsonl"]), tmp_path, 0)
    assert [p.name for p in got] == ["clash_a.jsonl", "clash_b.jsonl"]


def test_prepare_reads_both_files_with_one_inode_number(tmp_path, qwen_tokenizer_dir, one_inode_number):
    # One record holds `other`: a source that rejects every record it reads is an error (b800402).
    (tmp_path / "clash_a.jsonl").write_text('{"text": "first file"}\n{"text": "first file, again", "other": "other field"}\n')
    (tmp_path / "clash_b.jsonl").write_text('{"text": "second file"}\n')
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": str(qwen_tokenizer_dir), "workers": 1,
                                 "sources": [{"name": "a", "path": ["clash_a.jsonl"]},
                                             {"name": "b", "path": ["clash_b.jsonl"]},
                                             {"name": "all", "path": ["clash_*.jsonl"], "text_field": "other"}],
                                 "dedup": {"exact": False, "near": False}})
    prepare(cfg, tmp_path / "out", quiet=True)
    sources = json.loads((tmp_path / "out" / "manifest.json").read_text())["sources"]
    assert (sources["a"]["read"], sources["b"]["read"], sources["all"]["read"]) == (2, 1, 3)


def test_names_of_one_file_are_still_one(tmp_path):
    # A symlink to it, a symlink to a directory above it, `..`: one real path (the file has one link).
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "d" / "y.jsonl").write_text('{"text": "y"}\n')
    os.symlink(tmp_path / "d" / "x.jsonl", tmp_path / "d" / "link.jsonl")
    os.symlink(tmp_path / "d", tmp_path / "dlink")
    got = expand_paths(_source(["d/*.jsonl", "dlink/*.jsonl", "d/../d/y.jsonl"]), tmp_path, 0)
    assert [p.relative_to(tmp_path).as_posix() for p in got] == ["d/link.jsonl", "d/y.jsonl"]


def test_a_symlink_to_a_hard_link_is_one_file_with_both_links(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.jsonl").write_text('{"text": "x"}\n')
    os.link(tmp_path / "a" / "x.jsonl", tmp_path / "b" / "x.jsonl")
    os.symlink(tmp_path / "b" / "x.jsonl", tmp_path / "b" / "s.jsonl")
    got = expand_paths(_source(["a/*.jsonl", "b/*.jsonl"]), tmp_path, 0)
    assert [p.relative_to(tmp_path).as_posix() for p in got] == ["a/x.jsonl"]


def _two_sources(tmp_path, tok, first, second):
    return from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": str(tok), "workers": 1,
                                  "sources": [{"name": "a", **first}, {"name": "b", **second}]})


def test_a_txt_file_read_by_two_sources_that_differ_in_text_field_is_refused(tmp_path, qwen_tokenizer_dir):
    # txt has no records: text_field (and record_path) change nothing, and the file was read twice unrefused.
    from steel.config import ConfigError

    (tmp_path / "notes.txt").write_text("one line\nanother line\n")
    (tmp_path / "r.jsonl").write_text('{"content": "x"}\n')
    cfg = _two_sources(tmp_path, qwen_tokenizer_dir, {"path": ["*.jsonl", "*.txt"], "text_field": "content"},
                       {"path": ["*.txt"]})
    with pytest.raises(ConfigError, match=r"source 'b'\) matches .*notes\.txt, which sources\[0\] \(source 'a'\)"):
        prepare(cfg, tmp_path / "out", quiet=True)


def test_a_chat_field_named_as_its_default_is_the_same_way(tmp_path, qwen_tokenizer_dir):
    from steel.config import ConfigError

    (tmp_path / "c.jsonl").write_text('{"instruction": "hi", "output": "hello"}\n')
    cfg = _two_sources(tmp_path, qwen_tokenizer_dir, {"path": ["c.jsonl"], "kind": "chat"},
                       {"path": ["c.jsonl"], "kind": "chat", "fields": {"output": "output"}})
    with pytest.raises(ConfigError, match=r"source 'b'\) matches .*c\.jsonl, which sources\[0\] \(source 'a'\)"):
        prepare(cfg, tmp_path / "out", quiet=True)
