"""Grown JSON documents and parquet files are told by the loader as grown JSONL files are: a JSON array with records
added inside it (its `]` became a comma: another head) and a parquet file rewritten with rows added (its bytes
differ from the first page on) were taken for new data, their first prepare's documents trained twice per epoch.
The manifest's heads are now of a JSON document's bytes up to its closing brackets, and of a parquet file's rows
(`sources.comparable_head`); a file that merely shares a start with the other (a parquet file's magic number and
schema, a JSON array's first records) is not refused."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_s14h5_grown_small_compressed import HEAD_BYTES, loader, prep, records, windows
from train_fixtures import Bytes

from steel.config import from_dict
from steel.data.chunks import read_manifest, write_manifest
from steel.data.config import DataConfig
from steel.data.loader import DataError
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.s15b")


def docs(seed: str, n: int) -> list[dict]:
    return [json.loads(line) for line in records(seed, n).decode().splitlines()]


def write_json(path: Path, value, indent: int | None) -> None:
    path.write_text(json.dumps(value, indent=indent, ensure_ascii=False) + ("\n" if indent else ""))


def write_parquet(path: Path, rows: list[dict], compression: str = "snappy") -> None:
    pq.write_table(pa.Table.from_pylist([{"id": i, **r, "blob": bytes([i % 256]) * 40} for i, r in enumerate(rows)]),
                   path, compression=compression)


@pytest.mark.parametrize("indent", [None, 2], ids=["compact", "pretty"])
def test_a_json_array_with_records_added_is_refused(tmp_path, indent):
    raw = tmp_path / "raw"
    raw.mkdir()
    first = docs("doc", 30)
    write_json(raw / "a.json", first, indent)
    assert (raw / "a.json").stat().st_size < HEAD_BYTES
    a = prep(raw, tmp_path / "A", ["a.json"])
    write_json(raw / "a.json", first + docs("added", 20), indent)
    b = prep(raw, tmp_path / "B", ["a.json"], chunk_tokens=5000)
    with pytest.raises(DataError) as e:  # was: accepted, the 30 records in both dirs
        loader(a, b)
    assert "it grew (records appended) between the two prepares" in str(e.value)
    assert "put the records added since in a file of another name" in str(e.value)
    with pytest.raises(DataError, match="it grew"):
        loader(b, a)
    # grown past 64 KB since: its first prepare's bytes to the closing bracket are still the start of the file
    write_json(raw / "a.json", first + docs("more", 900), indent)
    c = prep(raw, tmp_path / "C", ["a.json"])
    assert read_manifest(c)["input_heads"]["files"]["a.json"][1] == HEAD_BYTES
    with pytest.raises(DataError, match="it grew"):
        loader(a, c)


def test_a_nested_json_array_with_records_added_is_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    paragraphs = [{"context": d["text"]} for d in docs("squad", 12)]

    def prep_nested(out: str) -> Path:
        cfg = {"root": str(raw), "tokenizer": "unused", "chunk_tokens": 4000, "workers": 0, "filters": [],
               "sources": [{"name": "qa", "path": ["s.json"], "record_path": "data[*].paragraphs[*]",
                            "text_field": "context"}]}
        prepare(from_dict(DataConfig, cfg), tmp_path / out, encoder=Bytes(), log=LOG, quiet=True)
        return tmp_path / out

    write_json(raw / "s.json", {"version": 1, "data": [{"paragraphs": paragraphs[:8]}]}, None)
    a = prep_nested("A")
    write_json(raw / "s.json", {"version": 1, "data": [{"paragraphs": paragraphs}]}, None)  # 4 more paragraphs
    b = prep_nested("B")
    with pytest.raises(DataError, match="it grew"):
        loader(a, b)


@pytest.mark.parametrize("indent", [None, 2], ids=["compact", "pretty"])
def test_a_json_array_rewritten_is_other_data(tmp_path, indent):
    raw = tmp_path / "raw"
    raw.mkdir()
    first = docs("doc", 30)
    write_json(raw / "a.json", first, indent)
    a = prep(raw, tmp_path / "A", ["a.json"])
    write_json(raw / "a.json", first[:10] + docs("other", 30), indent)  # its first 10 records kept, as for JSONL
    b = prep(raw, tmp_path / "B", ["a.json"], chunk_tokens=5000)
    assert loader(a, b).total == windows(a, b)


def test_an_empty_json_array_that_grew_shares_no_document(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "old.jsonl").write_bytes(records("old", 60))
    (raw / "today.json").write_text("[]\n")
    a = prep(raw, tmp_path / "A", ["old.jsonl", "today.json"])
    write_json(raw / "today.json", docs("new", 40), None)
    b = prep(raw, tmp_path / "B", ["today.json"], chunk_tokens=5000)
    assert loader(a, b).total == windows(a, b)


@pytest.mark.parametrize("n", [30, 900], ids=["small", "over-64KB"])
def test_a_parquet_file_rewritten_with_rows_added_is_refused(tmp_path, n):
    raw = tmp_path / "raw"
    raw.mkdir()
    first = docs("doc", n)
    write_parquet(raw / "p.parquet", first)
    a = prep(raw, tmp_path / "A", ["p.parquet"])
    old = (raw / "p.parquet").read_bytes()
    write_parquet(raw / "p.parquet", first + docs("added", 40))
    new = (raw / "p.parquet").read_bytes()
    assert new[: len(old)] != old  # (its bytes tell nothing: rewritten from the first page on)
    b = prep(raw, tmp_path / "B", ["p.parquet"], chunk_tokens=5000)
    with pytest.raises(DataError) as e:  # was: accepted, the first prepare's rows in both dirs
        loader(a, b)
    assert "of its rows (as JSON lines): it grew (records appended)" in str(e.value)


def test_a_parquet_file_rewritten_with_the_same_rows_is_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = docs("doc", 100)  # (more than one chunk: the two dirs' chunks differ)
    write_parquet(raw / "p.parquet", rows, "snappy")
    a = prep(raw, tmp_path / "A", ["p.parquet"])
    write_parquet(raw / "p.parquet", rows, "zstd")
    b = prep(raw, tmp_path / "B", ["p.parquet"], chunk_tokens=5000)
    assert read_manifest(a)["inputs"]["files"] != read_manifest(b)["inputs"]["files"]  # (another size)
    with pytest.raises(DataError, match="that is all of its text at both prepares"):
        loader(a, b)


def test_an_unrelated_parquet_file_at_the_same_path_is_other_data(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_parquet(raw / "p.parquet", docs("monday", 30))
    a = prep(raw, tmp_path / "A", ["p.parquet"])
    old = (raw / "p.parquet").read_bytes()
    write_parquet(raw / "p.parquet", docs("tuesday", 50))
    assert (raw / "p.parquet").read_bytes()[:4] == old[:4] == b"PAR1"  # (one magic number, one schema)
    b = prep(raw, tmp_path / "B", ["p.parquet"], chunk_tokens=5000)
    assert loader(a, b).total == windows(a, b)


def test_older_manifests_are_judged_as_before(tmp_path):
    """A manifest of an older Steel recorded a small JSON file's head as all of its bytes: with a grown file's new
    head it tells nothing (not refused, as before), and nothing fails."""
    raw = tmp_path / "raw"
    raw.mkdir()
    first = docs("doc", 30)
    write_json(raw / "a.json", first, None)
    a = prep(raw, tmp_path / "A", ["a.json"])
    text = (raw / "a.json").read_bytes()
    m = read_manifest(a)
    m["input_heads"]["files"]["a.json"] = [hashlib.blake2b(text, digest_size=8).hexdigest(), len(text)]
    write_manifest(a, m)
    write_json(raw / "a.json", first + docs("added", 20), None)
    b = prep(raw, tmp_path / "B", ["a.json"], chunk_tokens=5000)
    assert loader(a, b).total == windows(a, b)
