"""A file that held no record at one prepare (a CSV of its header line alone, a JSONL of blank lines) and grew
since shares no document with the other prepare's dir: the pair is no duplicate and is not refused.

63ffca8 made the loader tell a file under 64 KB at a prepare that grew (its first bytes now give both prepares'
digests). A daily CSV export prepared right after it was created (its header line alone) was then refused with the
dir that read its rows: "the documents of its first 5 bytes are in both dirs", although there were none, and the
first dir had other files (a correct setup refused; the old 64 KB rule never compared such a file). A file whose
first prepare held records is refused as before (the control below).
"""

from __future__ import annotations

import gzip

import pytest
from test_s14h5_grown_small_compressed import loader, prep, records, windows

from steel.data.loader import DataError


def rows(first: int, n: int) -> str:
    return "".join(f"row {i} of the export with some words in it\n" for i in range(first, first + n))


@pytest.mark.parametrize("name, empty, pack", [
    ("today.csv", "text\n", str.encode),
    ("today.tsv", "text\r\n", str.encode),
    ("today.csv.gz", "text\n", lambda s: gzip.compress(s.encode(), mtime=0)),
    ("today.jsonl", "\n\n", str.encode),
], ids=["csv", "tsv-crlf", "csv.gz", "jsonl-blank"])
def test_a_file_without_records_at_a_prepare_that_grew_shares_no_document(tmp_path, name, empty, pack):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "old.jsonl").write_bytes(records("old", 60))
    (raw / name).write_bytes(pack(empty))
    a = prep(raw, tmp_path / "A", ["old.jsonl", name])
    grown = empty + (rows(0, 40) if ".csv" in name or ".tsv" in name else records("new", 40).decode())
    (raw / name).write_bytes(pack(grown))
    b = prep(raw, tmp_path / "B", [name], chunk_tokens=5000)
    assert loader(a, b).total == windows(a, b)  # was: DataError "... it grew (records appended) ..."


def test_a_csv_with_rows_at_its_first_prepare_that_grew_is_still_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "old.jsonl").write_bytes(records("old", 60))
    (raw / "today.csv").write_text("text\n" + rows(0, 1))
    a = prep(raw, tmp_path / "A", ["old.jsonl", "today.csv"])
    with open(raw / "today.csv", "a") as f:
        f.write(rows(1, 40))
    b = prep(raw, tmp_path / "B", ["today.csv"], chunk_tokens=5000)
    with pytest.raises(DataError, match="it grew"):
        loader(a, b)
