"""The GB18030 hint of a source whose every record is `invalid_utf8` tells the command through the decompressor for
the files that are compressed by their content (the magic number the readers go by), not by their names: a zstd
file named zh.csv was told `iconv` on its compressed bytes, a plain file named zh.csv.zst a `zstd -dc` that fails."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest
import zstandard

from steel.cli import UserError
from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.prepare import kept_nothing, manifest_paths, prepare

LOG = logging.getLogger("test.steel.data.s15b")
DOCS = [f"长江是中国最长的河流，第{k}段" for k in range(20)]
CSV_GBK = ("text\n" + "".join(f"{d}\n" for d in DOCS)).encode("gbk")


def _prepare(root, enc, name: str, out: str = "out") -> dict:
    cfg = from_dict(DataConfig, {"root": str(root), "tokenizer": "unused", "workers": 0,
                                 "sources": [{"name": "s", "path": [name]}]})
    return prepare(cfg, root / out, encoder=enc, log=LOG, quiet=True)


@pytest.mark.parametrize("name, data, told", [
    ("zh.csv", zstandard.ZstdCompressor().compress(CSV_GBK),
     "zstd -dc FILE | iconv -f GB18030 -t UTF-8 | zstd > NEW.csv"),  # was: iconv -f GB18030 -t UTF-8
    ("zh.csv.zst", CSV_GBK, "iconv -f GB18030 -t UTF-8"),  # was: zstd -dc FILE | ... (zstd: unknown header)
])
def test_the_hint_goes_by_the_content(tmp_path, enc, name, data, told):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(UserError) as e:
        _prepare(tmp_path, enc, name)
    assert (f"all {len(DOCS)} records rejected (invalid_utf8 {len(DOCS)}); its files are not UTF-8 text (GBK or "
            f"GB18030? see the rejections above): convert them, e.g. {told};") in str(e.value)
    if not (shutil.which("zstd") and shutil.which("iconv")):
        pytest.skip("no zstd or iconv here to run the command told")
    command = told.replace("FILE", name) if "FILE" in told else f"{told} {name} > NEW.csv"
    subprocess.run(command, shell=True, check=True, cwd=tmp_path)
    m = _prepare(tmp_path, enc, "NEW.csv", out="converted")
    assert m["sources"]["s"]["kept"] == len(DOCS)


def test_inspect_and_merge_tell_by_the_content_where_the_files_are_at_hand(tmp_path):
    # What `steel data inspect` and merge judge: a manifest's accounting, the files under its inputs.root.
    (tmp_path / "packed.jsonl").write_bytes(zstandard.ZstdCompressor().compress(b"x"))
    (tmp_path / "plain.zst").write_bytes(b"x")
    manifest = {"inputs": {"root": str(tmp_path)},
                "sources": {"s": {"read": 2, "kept": 0, "filtered": {}, "rejected": {"invalid_utf8": 2},
                                  "kind": "text", "files": ["packed.jsonl", "plain.zst", "gone.txt.gz"]}}}
    assert manifest_paths(manifest) == {f: str(tmp_path / f) for f in ("packed.jsonl", "plain.zst", "gone.txt.gz")}
    [error] = kept_nothing(manifest["sources"], paths=manifest_paths(manifest))[0]
    gb = ("gzip -dc FILE | iconv -f GB18030 -t UTF-8 | gzip > NEW.txt.gz, iconv -f GB18030 -t UTF-8, "  # (gz: by name)
          "zstd -dc FILE | iconv -f GB18030 -t UTF-8 | zstd > NEW.jsonl")
    assert f"convert them, e.g. {gb}, or " in error, error
    # An older Steel's manifest (no inputs.root): by the names, as before.
    del manifest["inputs"]
    assert manifest_paths(manifest) == {}
    [error] = kept_nothing(manifest["sources"], paths=manifest_paths(manifest))[0]
    assert ("convert them, e.g. gzip -dc FILE | iconv -f GB18030 -t UTF-8 | gzip > NEW.txt.gz, iconv -f GB18030 -t "
            "UTF-8, zstd -dc FILE | iconv -f GB18030 -t UTF-8 | zstd > NEW.zst, or") in error, error
