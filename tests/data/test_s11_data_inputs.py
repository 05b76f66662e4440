"""Session 11 data-pipeline review: inputs (compression) and `steel data inspect`."""

from __future__ import annotations

import json
import logging
import struct

import pytest
import zstandard

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader


def _skippable(payload: bytes = b"\x00\x00\x00\x00", nibble: int = 0) -> bytes:
    """A zstd skippable frame (magic 0x184D2A50-5F, little-endian, then its size): what `pzstd` writes
    before each frame (its payload is the next frame's size)."""
    return struct.pack("<II", 0x184D2A50 + nibble, len(payload)) + payload


def _read(path, **src):
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)], **src}]})
    return [(it.line, it.doc, it.reason) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


@pytest.mark.parametrize("name,src,body,want", [
    ("a.json.zst", {}, b'[{"text": "one"}, {"text": "two"}]', [(1, "one", None), (2, "two", None)]),
    ("a.json.zst", {}, b'{"text": "one"}\n{"text": "two"}\n', [(1, "one", None), (2, "two", None)]),
    ("a.csv.zst", {}, b"id,text\n1,one\n2,\"two\nlines\"\n", [(2, "one", None), (3, "two\nlines", None)]),
    ("a.tsv.zst", {}, b"text\tx\none\t1\n", [(2, "one", None)]),
    ("a.txt.zst", {"txt_unit": "line"}, b"one\ntwo\n", [(1, "one", None), (2, "two", None)]),
    ("a.data", {"format": "jsonl"}, b'{"text": "one"}\n{"text": "two"}', [(1, "one", None), (2, "two", None)]),
    ("a.jsonl.zst", {}, b'{"text": "one"}\n', [(1, "one", None)]),
])
def test_zstd_file_opening_with_a_skippable_frame_is_decompressed(tmp_path, name, src, body, want):
    # pzstd's layout: a skippable frame before each zstd frame. Told plain by its first 4 bytes, such a
    # file was read as compressed bytes: all rejected (invalid_utf8, malformed_json; a CSV's rows missing_field).
    c = zstandard.ZstdCompressor()
    half = len(body) // 2
    data = _skippable(nibble=0) + c.compress(body[:half]) + _skippable(b"xyz", nibble=0xF) + c.compress(body[half:])
    (tmp_path / name).write_bytes(data)
    assert _read(tmp_path / name, **src) == want


def test_a_plain_file_is_not_taken_for_zstd(tmp_path):
    # the bytes 0x2a 0x4d 0x18 after a byte outside 0x50-0x5f are no skippable frame
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "*M\\u0018"}\n')
    assert _read(tmp_path / "a.jsonl") == [(1, "*M\x18", None)]
    (tmp_path / "b.txt").write_bytes(b"O*M\x18 text")
    assert _read(tmp_path / "b.txt") == [(1, "O*M\x18 text", None)]


def test_prepare_accounts_a_pzstd_layout_file(tmp_path, qwen_tokenizer_dir, enc):
    from steel.data.prepare import prepare

    c = zstandard.ZstdCompressor()
    rows = "".join(f"{i},row number {i}\n" for i in range(5)).encode()
    (tmp_path / "r.csv.zst").write_bytes(_skippable() + c.compress(b"id,text\n" + rows))
    (tmp_path / "p.json.zst").write_bytes(_skippable() + c.compress(json.dumps([{"text": "json doc"}]).encode()))
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": str(qwen_tokenizer_dir), "workers": 1,
                                 "dedup": {"exact": False, "near": False},
                                 "sources": [{"name": "c", "path": ["r.csv.zst"]}, {"name": "j", "path": ["p.json.zst"]}]})
    m = prepare(cfg, tmp_path / "out", quiet=True, encoder=enc)
    assert [(s["read"], s["kept"], s["rejected"]) for s in m["sources"].values()] == [(5, 5, {}), (1, 1, {})]


def _data_dir(d, fingerprint="ab" * 32, vocab=1000, tokens=(1, 2, 3)):
    from steel.data.chunks import head_tail_md5, write_chunk, write_manifest

    d.mkdir()
    write_chunk(d / "s-00000.bin", list(tokens), vocab, fingerprint)
    write_manifest(d, {"total_tokens": len(tokens), "tokenizer": {"fingerprint": fingerprint, "vocab_size": vocab,
                                                                  "eos_id": 0},
                       "chunks": [{"file": "s-00000.bin", "tokens": len(tokens), "md5": head_tail_md5(d / "s-00000.bin"),
                                   "source": "s"}],
                       "sources": {"s": {"read": 1, "kept": 1, "filtered": {}, "rejected": {}, "tokens": len(tokens)}}})


@pytest.mark.parametrize("other", [{"fingerprint": "cd" * 32}, {"vocab": 2000}])
def test_inspect_refuses_a_chunk_of_another_tokenizer(tmp_path, capsys, other):
    # `steel train` refuses such a chunk (chunks.check_headers); inspect said the directory was fine (exit 0)
    from steel.cli import main as steel_main

    _data_dir(tmp_path / "good")
    assert steel_main(["data", "inspect", str(tmp_path / "good")]) == 0
    _data_dir(tmp_path / "other", **other)
    (tmp_path / "other" / "s-00000.bin").replace(tmp_path / "good" / "s-00000.bin")  # same size and token count
    capsys.readouterr()
    assert steel_main(["data", "inspect", str(tmp_path / "good")]) == 1
    out = capsys.readouterr().out
    assert "1 of 1 chunks do not match the manifest" in out
    assert ("tokenizer fingerprint cdcdcdcdcdcdcdcd..., the manifest's is abababababababab..." in out
            if "fingerprint" in other else "vocab size 2,000, the manifest says 1,000" in out)


def _c4_like(tmp_path):
    import gzip

    (tmp_path / "c4").mkdir()
    for k in range(2):  # JSON Lines named .json.gz, as C4 ships them
        lines = "".join(json.dumps({"text": f"c4 file {k} document {i}"}) + "\n" for i in range(3))
        (tmp_path / "c4" / f"c4-{k}.json.gz").write_bytes(gzip.compress(lines.encode()))


def test_overlap_of_json_and_jsonl_readings_of_one_jsonl_file_is_refused(tmp_path):
    # `format: json` streams a JSON Lines file as `jsonl` does: the same records, read twice (they were kept
    # twice with dedup off; with exact dedup the upweighted source lost them all to dedup_exact)
    from steel.config import ConfigError
    from steel.data.prepare import check_overlaps
    from steel.data.sources import expand_paths

    _c4_like(tmp_path)
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "sources": [
        {"name": "c4", "path": ["c4/*.json.gz"], "format": "jsonl"},
        {"name": "c4_up", "path": ["c4/c4-1.json.gz"], "weight": 2.0}]})
    files = [(i, p, p.name) for i, s in enumerate(cfg.sources) for p in expand_paths(s, tmp_path, i)]
    with pytest.raises(ConfigError, match=r"sources\[1\].path \(source 'c4_up'\) matches .*c4-1.json.gz, which "
                                          r"sources\[0\] \(source 'c4'\) reads too, with the same settings and "
                                          r"filters \(one as json, the other as jsonl: both read JSON Lines alike\)"):
        check_overlaps(cfg, files)
    # another text field is another reading: allowed, as for any format
    cfg.sources[1].text_field = "body"
    check_overlaps(cfg, files)


def test_json_and_jsonl_readings_split_by_filters_warn(tmp_path, caplog):
    from steel.data.prepare import check_overlaps
    from steel.data.sources import expand_paths

    _c4_like(tmp_path)
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "filters": [
        {"name": "length", "max_chars": 20, "sources": ["short"]}, {"name": "length", "min_chars": 21,
                                                                     "sources": ["long"], "label": "long"}],
        "sources": [{"name": "short", "path": ["c4/*.json.gz"]},
                    {"name": "long", "path": ["c4/*.json.gz"], "format": "jsonl.gz"}]})
    files = [(i, p, p.name) for i, s in enumerate(cfg.sources) for p in expand_paths(s, tmp_path, i)]
    with caplog.at_level("WARNING"):
        check_overlaps(cfg, files)
    assert [r.getMessage()[:77] for r in caplog.records] == [
        "sources[1] (long) reads 2 file(s) that sources[0] (short) reads too, with the"]


def test_a_field_named_with_dots_is_read_by_that_name(tmp_path):
    # HF datasets' flatten() and pandas' json_normalize name nested columns `meta.body`: every row of such a
    # CSV/parquet/JSONL was rejected as "no field 'meta.body'", though the header showed that column
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text('id,meta.body\n1,first\n2,"second\nrow"\n', encoding="utf-8")
    assert _read(tmp_path / "a.csv", text_field="meta.body") == [(2, "first", None), (3, "second\nrow", None)]
    pq.write_table(pa.table({"id": [1, 2], "meta.body": ["p1", None], "x": [b"\x00" * 10] * 2}), tmp_path / "a.parquet")
    assert _read(tmp_path / "a.parquet", text_field="meta.body") == [(1, "p1", None), (2, None, "missing_field")]
    # a nested field comes first; the name with dots is the fallback
    (tmp_path / "a.jsonl").write_text(json.dumps({"meta": {"body": "nested"}, "meta.body": "flat"}) + "\n"
                                      + json.dumps({"meta": {"lang": "en"}, "meta.body": "flat only"}) + "\n"
                                      + json.dumps({"meta": {"lang": "en"}}) + "\n", encoding="utf-8")
    assert _read(tmp_path / "a.jsonl", text_field="meta.body") == [
        (1, "nested", None), (2, "flat only", None), (3, None, "missing_field")]
    # chat fields too
    (tmp_path / "c.csv").write_text("q.text,a.text\nwhat?,this.\n", encoding="utf-8")
    assert _read(tmp_path / "c.csv", kind="chat", fields={"instruction": "q.text", "output": "a.text"}) == [
        (2, [{"role": "user", "content": "what?"}, {"role": "assistant", "content": "this."}], None)]


def test_identical_chunks_are_named_at_prepare_and_merge(tmp_path, qwen_tokenizer_dir, enc, caplog):
    # With dedup off, two sources holding the same documents (a file and its .zst copy) gave byte-identical
    # chunks: prepare said nothing, and `steel train` refused the directory ("duplicate chunk ... a copy of a
    # data dir?"). Prepare (and merge, across shards) now say so, naming the chunks.
    from steel.data.loader import DataError, scan_data_dirs
    from steel.data.merge import merge
    from steel.data.prepare import prepare

    body = "".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(3)).encode()
    (tmp_path / "a.jsonl").write_bytes(body)
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(body))
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "a.jsonl").write_bytes(body)
    base = {"root": str(tmp_path), "tokenizer": str(qwen_tokenizer_dir), "workers": 1,
            "dedup": {"exact": False, "near": False}}
    cfg = from_dict(DataConfig, base | {"sources": [{"name": "a", "path": ["a.jsonl"]},
                                                    {"name": "z", "path": ["a.jsonl.zst"]}]})
    with caplog.at_level("WARNING"):
        prepare(cfg, tmp_path / "out", quiet=True, encoder=enc, log=logging.getLogger("steel"))
    warned = [r.getMessage() for r in caplog.records if "are identical:" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(
        "chunks a-00000.bin (source a) and z-00000.bin (source z) are identical: ")
    with pytest.raises(DataError, match="duplicate chunk"):  # what the warning warns of
        scan_data_dirs([tmp_path / "out"])
    caplog.clear()
    # one source, two shards: the file and its copy land in different shards
    cfg = from_dict(DataConfig, base | {"sources": [{"name": "s", "path": ["a.jsonl", "copy/a.jsonl"]}]})
    for k in range(2):
        prepare(cfg, tmp_path / f"s{k}", shard=(k, 2), quiet=True, encoder=enc)
    assert not [r for r in caplog.records if "are identical:" in r.getMessage()]
    with caplog.at_level("WARNING"):
        merge(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"], log=logging.getLogger("steel"))
    warned = [r.getMessage() for r in caplog.records if "are identical:" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(
        "chunks s.shard000of002-00000.bin (source s) and s.shard001of002-00000.bin (source s) are identical: ")
