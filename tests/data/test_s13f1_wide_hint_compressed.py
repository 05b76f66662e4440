"""The hint for a compressed UTF-16 file: `iconv` on the file itself converts its compressed bytes (garbage); the
command told goes through the decompressor and back, and run as told gives a file the source reads."""

from __future__ import annotations

import codecs
import gzip
import json
import re
import shutil
import subprocess

import pytest
import zstandard

from steel.cli import UserError
from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader
from steel.tokenizer.train import iter_documents

DOCS = [f"长江是中国最长的河流，第{k}段 Yangtze part {k}" for k in range(50)]
TEXT = "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in DOCS)
PACK = {"zst": zstandard.ZstdCompressor().compress, "gz": lambda b: gzip.compress(b, mtime=0)}


def _items(path):
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)]}]})
    return [(it.line, it.doc, it.reason, it.detail) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


@pytest.mark.parametrize("codec, bom, flag", [("utf-16-le", b"", "UTF-16LE"), ("utf-16-be", b"", "UTF-16BE"),
                                              ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16")])
@pytest.mark.parametrize("comp, tool", [("zst", "zstd"), ("gz", "gzip")])
def test_compressed_utf16_hint_pipes_through_the_decompressor(tmp_path, codec, bom, flag, comp, tool):
    path = tmp_path / f"my docs.jsonl.{comp}"  # (a space: the path is quoted for the shell)
    path.write_bytes(PACK[comp](bom + TEXT.encode(codec)))
    command = f"{tool} -dc '{path}' | iconv -f {flag} -t UTF-8 | {tool} > NEW.jsonl.{comp}"
    [(line, doc, reason, detail)] = _items(path)
    assert (line, doc, reason) == (0, None, "invalid_utf8")
    assert detail.endswith(f"not UTF-8; convert it, e.g. `{command}`")
    with pytest.raises(UserError) as e:  # (`steel tokenizer train` tells the same)
        list(iter_documents(path))
    assert str(e.value) == f"{path}: {detail}"
    if not (shutil.which(tool) and shutil.which("iconv")):
        pytest.skip(f"no {tool} or iconv here to run the command told")
    subprocess.run(re.search(r"`(.*)`$", detail).group(1), shell=True, check=True, cwd=tmp_path)
    converted = tmp_path / f"NEW.jsonl.{comp}"
    assert [doc for _, doc, _, _ in _items(converted)] == DOCS
    assert list(iter_documents(converted)) == DOCS


def test_plain_utf16_hint_is_iconv_alone(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(TEXT.encode("utf-16-le"))
    assert _items(path)[0][3].endswith("not UTF-8; convert it, e.g. `iconv -f UTF-16LE -t UTF-8`")
