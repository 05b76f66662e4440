"""A swap that failed half way (its journal written, the previous manifest gone) and whose OUT/.partial/ the user
then removed leaves no complete output: readers refuse OUT, naming the journal and the command to run again, and
that command (a prepare, or a merge with --overwrite) makes the new output.

Found in review (V1): the error said "run the prepare again", and the prepare run again refused with the same error
(its _clear_stale finished the swap first, which raised) until .steel-swap.json was deleted by hand, which no
message said; its error path logged "the new output is complete in OUT/.partial", which was gone. Merge alike.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
from swap_kill import fail_second_move  # (same dir)
from test_s15c2_merge_swap_kill import output_files as merged_files  # (same dir)
from test_s15c_prepare_swap_kill import NEW_FP, config, output_files, previous_and_new, write_docs

from steel.config import from_dict
from steel.data.chunks import ChunkFormatError, read_manifest
from steel.data.config import DataConfig
from steel.data.prepare import STAGING, prepare
from steel.data.swap import JOURNAL

LOG = logging.getLogger("steel.test.s15c3")


class Bytes:
    eos_id, vocab_size, special_ids, fingerprint = 0, 257, {}, NEW_FP

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


def hidden(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_the_prepare_the_error_tells_to_run_again_runs(tmp_path, monkeypatch, caplog):
    out, ref, new_cfg = previous_and_new(tmp_path, Bytes(), LOG)
    with monkeypatch.context() as m:
        fail_second_move(m, out)
        with caplog.at_level(logging.ERROR, logger="steel"), pytest.raises(OSError):
            prepare(new_cfg, out, encoder=Bytes(), log=LOG, quiet=True)
    assert "the new output is complete" in caplog.text  # true here: OUT/.partial/ holds its manifest
    shutil.rmtree(out / STAGING)  # "a leftover": removed by hand
    with pytest.raises(ChunkFormatError) as e:
        read_manifest(out)
    assert str(out / JOURNAL) in str(e.value) and "Run `steel data prepare` again" in str(e.value), e.value
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="steel"):
        prepare(new_cfg, out, encoder=Bytes(), log=LOG, quiet=True)  # as the error says
    assert "held no complete output; dropped the journal" in caplog.text
    assert [c["md5"] for c in read_manifest(out)["chunks"]] == [c["md5"] for c in read_manifest(ref)["chunks"]]
    assert output_files(out) == output_files(ref)
    assert hidden(out) == [".steel.lock"]


def test_a_prepare_that_fails_on_such_a_journal_does_not_say_an_output_is_complete(tmp_path, monkeypatch, caplog):
    root = tmp_path / "in"
    root.mkdir()
    write_docs(root)
    out = tmp_path / "out"
    prepare(from_dict(DataConfig, config(root, 600, ["a", "b"], True)), out, encoder=Bytes(), log=LOG, quiet=True)
    new_cfg = from_dict(DataConfig, config(root, 450, ["a", "c"], False))
    with monkeypatch.context() as m:
        fail_second_move(m, out)
        with pytest.raises(OSError):
            prepare(new_cfg, out, encoder=Bytes(), log=LOG, quiet=True)
    shutil.rmtree(out / STAGING)
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):  # dropping the journal's leftovers fails
        if Path(path).parent == out and Path(path).name.endswith(".bin"):
            raise OSError(5, "Input/output error")
        return real_unlink(path, *args, **kwargs)

    caplog.clear()
    with monkeypatch.context() as m:
        m.setattr(os, "unlink", unlink)
        with caplog.at_level(logging.ERROR, logger="steel"), pytest.raises(ChunkFormatError):
            prepare(new_cfg, out, encoder=Bytes(), log=LOG, quiet=True)
    assert "complete" not in caplog.text, caplog.text
    # run again with other sources: the files the journal named (a-*.bin, the failed swap's and the previous
    # output's, which no manifest lists and this prepare's names do not replace) went with it
    other_cfg, ref = from_dict(DataConfig, config(root, 450, ["b", "c"], False)), tmp_path / "ref"
    prepare(other_cfg, ref, encoder=Bytes(), log=LOG, quiet=True)
    assert (out / "a-00000.bin").exists()
    prepare(other_cfg, out, encoder=Bytes(), log=LOG, quiet=True)
    assert output_files(out) == output_files(ref)
    assert hidden(out) == [".steel.lock"]


def test_the_merge_the_error_tells_to_run_again_runs(tmp_path, monkeypatch, capsys):
    from steel.cli import main
    from steel.data.merge import merge

    root = tmp_path / "in"
    root.mkdir()
    write_docs(root)
    old_cfg = from_dict(DataConfig, config(root, 600, ["a", "b"], True))
    new_cfg = from_dict(DataConfig, config(root, 450, ["a", "c"], True))
    old, new = [tmp_path / f"old{i}" for i in range(2)], [tmp_path / f"new{i}" for i in range(2)]
    for dirs, cfg in ((old, old_cfg), (new, new_cfg)):
        for i, d in enumerate(dirs):
            prepare(cfg, d, encoder=Bytes(), shard=(i, 2), log=LOG, quiet=True)
    out, ref = tmp_path / "out", tmp_path / "ref"
    merge(out, old, log=LOG)
    merge(ref, new, log=LOG)
    assert any(p.name.startswith("b.") for p in out.glob("*.bin"))
    with monkeypatch.context() as m:
        fail_second_move(m, out)
        with pytest.raises(OSError):
            merge(out, new, log=LOG, overwrite=True)
    shutil.rmtree(out / STAGING)
    with pytest.raises(ChunkFormatError) as e:
        read_manifest(out)
    assert str(out / JOURNAL) in str(e.value) and "Run `steel data merge --overwrite` again" in str(e.value)
    capsys.readouterr()
    assert main(["data", "merge", str(out), *map(str, new)]) == 2  # without --overwrite: refused, saying so
    assert "steel data merge --overwrite" in capsys.readouterr().err
    assert main(["data", "merge", "--overwrite", str(out), *map(str, new)]) in (0, None)
    got, want = merged_files(out), merged_files(ref)
    got.pop("merge.log", None)
    assert got == want
    assert hidden(out) == [".steel.lock"]
