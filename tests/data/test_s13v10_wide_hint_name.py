"""The UTF-16 hint for a compressed file names a new file that reads as the old one did: its format is told by the
name's ending (`detect_format`), so `NEW.gz` for a DATA.CSV.GZ, or for a gzip file named data.csv, was read as
JSONL, every row rejected."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess

import pytest
import zstandard

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader

DOCS = [f"长江是中国最长的河流，第{k}段 Yangtze part {k}" for k in range(30)]
CSV = "id,text\n" + "".join(f"{k},{d}\n" for k, d in enumerate(DOCS))
PACK = {"zstd": zstandard.ZstdCompressor().compress, "gzip": lambda b: gzip.compress(b, mtime=0)}


def _items(path):
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)]}]})
    return [(it.doc, it.reason, it.detail) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


@pytest.mark.parametrize("name, tool, new", [("DATA.CSV.GZ", "gzip", "NEW.CSV.GZ"),
                                             ("data.csv", "gzip", "NEW.csv"),
                                             ("v1.5 rows.csv.Zst", "zstd", "NEW.csv.Zst")])
def test_converted_file_keeps_the_format_its_name_tells(tmp_path, name, tool, new):
    path = tmp_path / name
    path.write_bytes(PACK[tool](CSV.encode("utf-16-le")))
    [(doc, reason, detail)] = _items(path)
    assert (doc, reason) == (None, "invalid_utf8")
    command = re.search(r"`(.*)`$", detail).group(1)
    assert command.endswith(f"| {tool} > {new}")
    if not (shutil.which(tool) and shutil.which("iconv")):
        pytest.skip(f"no {tool} or iconv here to run the command told")
    subprocess.run(command, shell=True, check=True, cwd=tmp_path)
    assert [(doc, reason) for doc, reason, _ in _items(tmp_path / new)] == [(d, None) for d in DOCS]
