"""A file whose format its name does not tell fails `steel data prepare` before any work, naming the
config field (before, it failed when reading reached it, after the sources before it were processed)."""

from __future__ import annotations

import pytest
from test_shard_inputs import LOG, cfg_for, write_jsonl

from steel.config import ConfigError
from steel.data.chunks import MANIFEST
from steel.data.prepare import STAGING, prepare


def test_unknown_suffix_fails_before_any_work(tmp_path, enc):
    """A pattern that matches a file of unknown format is refused up front, naming the source's field; before,
    the first source was read in full and the error (from the reader) named only the file."""
    write_jsonl(tmp_path / "a.jsonl", 3)
    (tmp_path / "b").mkdir()
    write_jsonl(tmp_path / "b" / "b1.jsonl", 2)
    write_jsonl(tmp_path / "b" / "b2.data", 2)
    sources = [{"name": "a", "path": ["a.jsonl"]}, {"name": "b", "path": ["b/*"]}]
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"sources\[1\]\.path \(source 'b'\) matches .*b2\.data, whose format "
                                          r"the file name does not tell; set sources\[1\]\.format \(jsonl, "):
        prepare(cfg_for(tmp_path, sources), out, encoder=enc, log=LOG, quiet=True)
    assert not (out / MANIFEST).exists() and not (out / STAGING).exists() and not list(out.glob("*.bin"))
    # With the format given, the same files are read.
    sources[1]["format"] = "jsonl"
    m = prepare(cfg_for(tmp_path, sources), out, encoder=enc, log=LOG, quiet=True)
    assert m["sources"]["b"]["kept"] == 4
