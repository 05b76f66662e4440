"""`steel train` names why the data's tokenizer was not copied into RUN_DIR/tokenizer/ (session 15, F).

A user who retrained their `tokenizer: DIR` with `steel tokenizer train --overwrite` after preparing data with
it got `tokenizer: the data's tokenizer was not found, so RUN has none`, though the directory was right there:
its fingerprint is not the manifest's (the data's ids would decode to other text). The warning now says so."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

from tiny_models import build_byte_tokenizer  # noqa: E402
from train_fixtures import make_data_dir  # noqa: E402

from steel.data.chunks import read_manifest, write_manifest  # noqa: E402
from steel.data.tokenize import dir_fingerprint  # noqa: E402
from steel.train.trainer import save_run_tokenizer  # noqa: E402


def _data_with_tokenizer_dir(tmp_path: Path) -> tuple[Path, Path]:
    tok = tmp_path / "tok"
    build_byte_tokenizer(tok)
    data = make_data_dir(tmp_path / "data", [300], fingerprint=dir_fingerprint(tok))
    manifest = read_manifest(data)
    manifest["tokenizer"].update(spec=str(tok), dir=str(tok))  # prepared with `tokenizer: TOK`
    write_manifest(data, manifest)
    return tok, data


def test_a_retrained_tokenizer_dir_is_named_with_why(tmp_path, caplog):
    tok, data = _data_with_tokenizer_dir(tmp_path)
    build_byte_tokenizer(tok, merges=[("Ġ", "C")])  # retrained over it: other ids
    run = tmp_path / "run"
    run.mkdir()
    with caplog.at_level(logging.WARNING, logger="steel"):
        save_run_tokenizer(run, [data])
    assert not (run / "tokenizer").exists()
    [msg] = [r.getMessage() for r in caplog.records if "tokenizer" in r.getMessage()]
    assert f"({tok}: tokenizer fingerprint differs from {data / 'manifest.json'}'s)" in msg, msg
    assert f"so {run} has none" in msg


def test_the_data_tokenizer_dir_is_copied(tmp_path, caplog):
    tok, data = _data_with_tokenizer_dir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    with caplog.at_level(logging.WARNING, logger="steel"):
        save_run_tokenizer(run, [data])
    assert dir_fingerprint(run / "tokenizer") == dir_fingerprint(tok)
    assert not [r for r in caplog.records if "not found" in r.getMessage()]


def test_one_directory_named_once_in_any_spelling(tmp_path, caplog, monkeypatch):
    """`tokenizer: tok` prepared from the data dir's parent: the relative spec and the recorded absolute
    `tokenizer.dir` are one directory, named once."""
    tok, data = _data_with_tokenizer_dir(tmp_path)
    manifest = read_manifest(data)
    manifest["tokenizer"]["spec"] = "tok"
    write_manifest(data, manifest)
    build_byte_tokenizer(tok, merges=[("Ġ", "C")])
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="steel"):
        save_run_tokenizer(run, [Path("data")])
    [msg] = [r.getMessage() for r in caplog.records if "tokenizer" in r.getMessage()]
    assert msg.count("fingerprint differs") == 1, msg
