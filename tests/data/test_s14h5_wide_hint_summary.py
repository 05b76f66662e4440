"""The summary hint of a source whose files are all compressed UTF-16 (`steel data prepare` ends with it): it said
`iconv -f UTF-16LE -t UTF-8`, which run on a .jsonl.zst converts the compressed bytes (garbage), while each file's
rejection already told the pipeline through the decompressor. The summary now tells that pipeline per kind of
file, and run as told (FILE the input, NEW the output) it gives files the source reads; so does the GB18030 hint
of a source of compressed files (the same `iconv` alone), told by the file names where the rejections are not at
hand (`steel data inspect`, merge)."""

from __future__ import annotations

import gzip
import json
import logging
import re
import shlex
import shutil
import subprocess

import pytest
import zstandard

from steel.cli import UserError
from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.prepare import kept_nothing, prepare

LOG = logging.getLogger("test.steel.data.s14h5")
DOCS = [f"长江是中国最长的河流，第{k}段 Yangtze part {k}" for k in range(30)]
PACK = {"zst": zstandard.ZstdCompressor().compress, "gz": lambda b: gzip.compress(b, mtime=0)}


def _jsonl(docs: list[str]) -> bytes:
    return "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs).encode("utf-8")


def _prepare(root, enc, paths: list[str], out: str = "out") -> dict:
    cfg = from_dict(DataConfig, {"root": str(root), "tokenizer": "unused", "workers": 0,
                                 "sources": [{"name": "s", "path": paths}]})
    return prepare(cfg, root / out, encoder=enc, log=LOG, quiet=True)


def test_the_summary_of_compressed_utf16_files_tells_the_pipeline(tmp_path, enc):
    halves = {"a.jsonl.zst": DOCS[:15], "b.csv.gz": DOCS[15:]}
    (tmp_path / "a.jsonl.zst").write_bytes(PACK["zst"](_jsonl(halves["a.jsonl.zst"]).decode().encode("utf-16-le")))
    (tmp_path / "b.csv.gz").write_bytes(
        PACK["gz"](("text\n" + "".join(f"{d}\n" for d in halves["b.csv.gz"])).encode("utf-16-be")))
    with pytest.raises(UserError) as e:
        _prepare(tmp_path, enc, ["a.jsonl.zst", "b.csv.gz"])
    msg = str(e.value)
    gz = "gzip -dc FILE | iconv -f UTF-16BE -t UTF-8 | gzip > NEW.csv.gz"
    zst = "zstd -dc FILE | iconv -f UTF-16LE -t UTF-8 | zstd > NEW.jsonl.zst"
    # was: "convert them, e.g. iconv -f UTF-16BE -t UTF-8, iconv -f UTF-16LE -t UTF-8"
    assert ("source 's': all 2 records rejected (invalid_utf8 2); its files are UTF-16-BE or UTF-16-LE, not UTF-8 "
            f"(see the rejections above): convert them, e.g. {gz}, {zst};") in msg
    if not (shutil.which("zstd") and shutil.which("gzip") and shutil.which("iconv")):
        pytest.skip("no zstd, gzip or iconv here to run the commands told")
    for name, told in (("b.csv.gz", gz), ("a.jsonl.zst", zst)):
        new = re.search(r"> (\S+)$", told).group(1)
        subprocess.run(told.replace("FILE", shlex.quote(str(tmp_path / name))), shell=True, check=True, cwd=tmp_path)
        (tmp_path / new).rename(tmp_path / f"converted-{name}")
        m = _prepare(tmp_path, enc, [f"converted-{name}"], out=f"out-{name}")
        assert m["sources"]["s"]["kept"] == len(halves[name]) and m["sources"]["s"]["rejected"] == {}


def test_a_mix_of_plain_and_compressed_utf16_and_gbk(tmp_path, enc):
    (tmp_path / "plain.jsonl").write_bytes(_jsonl(DOCS[:3]).decode().encode("utf-16-le"))
    (tmp_path / "packed.jsonl.zst").write_bytes(PACK["zst"](_jsonl(DOCS[3:6]).decode().encode("utf-16-le")))
    (tmp_path / "gbk.jsonl").write_bytes(_jsonl(DOCS[6:8]).decode().encode("gbk"))
    with pytest.raises(UserError) as e:
        _prepare(tmp_path, enc, ["plain.jsonl", "packed.jsonl.zst", "gbk.jsonl"])
    # (which files are GBK is not counted: the GB18030 command is told for each kind of file of the source)
    assert ("all 4 records rejected (invalid_utf8 4); its files are not UTF-8 text: 2 of the rejections are "
            "UTF-16-LE files (iconv -f UTF-16LE -t UTF-8, zstd -dc FILE | iconv -f UTF-16LE -t UTF-8 | zstd > "
            "NEW.jsonl.zst), the others GBK or GB18030? (iconv -f GB18030 -t UTF-8, zstd -dc FILE | iconv -f GB18030 "
            "-t UTF-8 | zstd > NEW.jsonl.zst; see the rejections above)") in str(e.value)


def test_a_source_of_compressed_gbk_files_is_told_the_pipeline(tmp_path, enc):
    (tmp_path / "zh.csv.gz").write_bytes(PACK["gz"](("text\n" + "".join(f"{d}\n" for d in DOCS)).encode("gbk")))
    with pytest.raises(UserError) as e:
        _prepare(tmp_path, enc, ["zh.csv.gz"])
    told = "gzip -dc FILE | iconv -f GB18030 -t UTF-8 | gzip > NEW.csv.gz"
    # was: "convert them, e.g. iconv -f GB18030 -t UTF-8" (on the gzip bytes)
    assert (f"all {len(DOCS)} records rejected (invalid_utf8 {len(DOCS)}); its files are not UTF-8 text (GBK or "
            f"GB18030? see the rejections above): convert them, e.g. {told};") in str(e.value)
    if not (shutil.which("gzip") and shutil.which("iconv")):
        pytest.skip("no gzip or iconv here to run the command told")
    subprocess.run(told.replace("FILE", "zh.csv.gz"), shell=True, check=True, cwd=tmp_path)
    m = _prepare(tmp_path, enc, ["NEW.csv.gz"], out="converted")
    assert m["sources"]["s"]["kept"] == len(DOCS)


def test_without_the_rejections_at_hand_the_file_names_tell():
    """`steel data inspect` and merge: the manifest's file names say which are compressed."""
    sources = {"s": {"read": 3, "kept": 0, "filtered": {}, "rejected": {"invalid_utf8": 3}, "kind": "text",
                     "files": ["a.jsonl", "b.JSONL.ZST"]}}
    assert kept_nothing(sources)[0] == [
        "source 's': all 3 records rejected (invalid_utf8 3); its files are not UTF-8 text (GBK or GB18030? UTF-16? "
        "the prepare logs' rejections say): convert them, e.g. iconv -f GB18030 -t UTF-8, zstd -dc FILE | iconv -f "
        "GB18030 -t UTF-8 | zstd > NEW.JSONL.ZST, or iconv -f UTF-16LE -t UTF-8, zstd -dc FILE | iconv -f UTF-16LE -t "
        "UTF-8 | zstd > NEW.JSONL.ZST"]
