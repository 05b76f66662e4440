"""What the duplicate-input refusal of a grown input file (faf07fd) tells to do must work for the file's format: the
appended bytes of a CSV alone have no header line (its first appended row was read as the header: every row then
`missing_field`), and the same first 64 KB may open a file rewritten after them, not grown."""

from __future__ import annotations

import logging
import random
import re
import subprocess
from pathlib import Path

import pytest
from train_fixtures import Bytes

from steel.config import from_dict
from steel.data.chunks import read_manifest
from steel.data.config import DataConfig
from steel.data.loader import DataError, PretrainLoader
from steel.data.prepare import prepare

LOG = logging.getLogger("test.steel.s13v9")
WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "north", "paper", "lamp"]


def rows(seed: str, n: int) -> str:
    rng = random.Random(seed)
    return "".join(f"{seed}-{i},{' '.join(rng.choice(WORDS) for _ in range(14))}\n" for i in range(n))


def prep(root: Path, out: Path, name: str, chunk_tokens: int = 4000) -> Path:
    cfg = {"root": str(root), "tokenizer": "unused", "chunk_tokens": chunk_tokens, "workers": 0, "filters": [],
           "dedup": {"exact": True, "near": False}, "sources": [{"name": "web", "path": [name]}]}
    prepare(from_dict(DataConfig, cfg), out, encoder=Bytes(), log=LOG, quiet=True)
    return out


def refusal(a: Path, b: Path) -> str:
    with pytest.raises(DataError) as e:
        PretrainLoader([a, b], seq_len=16, micro_batch=2, seed=3)
    return str(e.value)


def test_the_command_told_for_a_grown_csv_keeps_its_header(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "crawl.csv").write_text("id,text\n" + rows("crawl", 900))
    assert (raw / "crawl.csv").stat().st_size > 1 << 16
    a = prep(raw, tmp_path / "A", "crawl.csv")
    with open(raw / "crawl.csv", "a") as f:
        f.write(rows("appended", 40))
    b = prep(raw, tmp_path / "B", "crawl.csv", chunk_tokens=5000)
    msg = refusal(a, b)
    assert "it grew (records appended)" in msg
    assert ("If it was rewritten with other content after its first 65,536 bytes instead, prepare the new content "
            "under another file name") in msg
    # what the message tells to run, as a user would: the 40 appended rows, read as rows under the file's header
    command = re.search(r"(\(head -n 1 FILE; tail -c \+\d+ FILE\)|tail -c \+\d+ FILE) > NEW", msg).group(0)
    subprocess.run(["bash", "-c", command.replace("FILE", str(raw / "crawl.csv")).replace("NEW", str(raw / "new.csv"))],
                   check=True)
    s = read_manifest(prep(raw, tmp_path / "P2", "new.csv"))["sources"]["web"]
    assert (s["read"], s["kept"]) == (40, 40)  # was 39 read, none kept: `missing_field` under the header "appended-0,..."


def test_a_json_array_file_gets_no_byte_command(tmp_path):
    """The bytes appended to a JSON array (`[...]` rewritten) are no JSON file: no tail command for it."""
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = random.Random(1)

    def array(n: int) -> str:
        return "[" + ",\n".join('{"text": "%d %s"}' % (i, " ".join(rng.choice(WORDS) for _ in range(14)))
                                for i in range(n)) + "]\n"

    body = array(900)
    (raw / "all.json").write_text(body)
    a = prep(raw, tmp_path / "A", "all.json")
    (raw / "all.json").write_text(body[:-2] + ",\n" + array(40)[1:])  # the same first 64 KB, records added
    b = prep(raw, tmp_path / "B", "all.json", chunk_tokens=5000)
    msg = refusal(a, b)
    assert "it grew (records appended)" in msg and "tail -c" not in msg
    assert "put the records added since in a file of another name" in msg


def test_a_file_cut_or_rewritten_after_its_first_64_kb_is_not_said_to_have_grown(tmp_path):
    """Same path, same first 64 KB, fewer bytes now (a dump regenerated, a file cut): it did not grow since the larger
    prepare, and the bytes after the smaller size are none. Told so, with the way to train both versions."""
    raw = tmp_path / "raw"
    raw.mkdir()
    head = rows("head", 900)
    (raw / "dump.csv").write_text("id,text\n" + head + rows("week1", 50))
    a = prep(raw, tmp_path / "A", "dump.csv")
    (raw / "dump.csv").write_text("id,text\n" + head + rows("week2", 20))
    now = (raw / "dump.csv").stat().st_size
    b = prep(raw, tmp_path / "B", "dump.csv", chunk_tokens=5000)
    msg = refusal(a, b)
    assert "it grew" not in msg and "tail -c" not in msg  # was: "it grew (records appended)", tail -c +{now + 1}
    assert f"it is {now:,} bytes now, so it was cut or rewritten after its first 65,536 bytes" in msg
    assert "if rewritten with other content, prepare the new content under another file name" in msg
    (raw / "dump.csv").rename(raw / "dump-week2.csv")  # what it says to do
    b2 = prep(raw, tmp_path / "B2", "dump-week2.csv", chunk_tokens=5000)
    assert PretrainLoader([a, b2], seq_len=16, micro_batch=2, seed=3).total > 0


@pytest.mark.parametrize("name", ["web.jsonl.zst", "web.jsonl.gz", "web.csv.gz", "web.parquet", "web.json"])
def test_no_byte_command_where_the_bytes_after_the_old_size_are_no_file(tmp_path, name):
    """A compressed file rewritten whole (one zstd frame, one gzip stream) may open with the same 64 KB; the bytes
    after the old size are then the middle of a stream, not a file to prepare."""
    from steel.data.loader import DirInputs, check_distinct_inputs

    p = str(tmp_path / name)  # (not on this machine: the sizes recorded tell the rest)
    dirs = [DirInputs(tmp_path / d, None, {name: "web"}, {p: name}, {p: size}, frozenset({d}), {p: ("ab" * 8, 1 << 16)},
                      1 << 16)
            for d, size in (("A", 100_000), ("B", 150_000))]
    with pytest.raises(DataError) as e:
        check_distinct_inputs(dirs, [])
    assert "it grew (records appended)" in str(e.value) and "tail -c" not in str(e.value)
    assert "put the records added since in a file of another name" in str(e.value)
