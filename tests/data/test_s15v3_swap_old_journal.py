"""A journal written by this session's first swap (148523e: version 1, no "by" field; a prepare's, as merge did not
swap then) that a kill left half done is still finished by today's reader: the new output, with a warning naming
`steel data prepare` (review V3)."""

from __future__ import annotations

import json
import logging

import pytest
from swap_kill import fail_second_move  # (same dir)
from test_s15c_prepare_swap_kill import NEW_FP, output_files, previous_and_new

from steel.data.chunks import read_manifest
from steel.data.prepare import prepare
from steel.data.swap import JOURNAL

LOG = logging.getLogger("steel.test.s15v3")


class Bytes:
    eos_id, vocab_size, special_ids, fingerprint = 0, 257, {}, NEW_FP

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


def test_a_148523e_journal_without_by_is_finished(tmp_path, monkeypatch, caplog):
    out, ref, new_cfg = previous_and_new(tmp_path, Bytes(), LOG)
    with monkeypatch.context() as m:  # the swap dies at its second move into OUT (previous manifest and files gone)
        fail_second_move(m, out, KeyboardInterrupt())  # stands for the kill: nothing after it runs
        with pytest.raises(KeyboardInterrupt):
            prepare(new_cfg, out, encoder=Bytes(), log=LOG, quiet=True)
    journal = json.loads((out / JOURNAL).read_text(encoding="utf-8"))
    assert journal.pop("by") == "steel data prepare"
    assert set(journal) == {"format", "version", "stage", "remove", "move", "tokenizer"}  # 148523e's keys
    (out / JOURNAL).write_text(json.dumps(journal, indent=1) + "\n", encoding="utf-8")
    assert not (out / "manifest.json").exists()  # half done: neither output readable without the journal
    with caplog.at_level(logging.WARNING, logger="steel"):
        got = read_manifest(out)
    assert "a `steel data prepare` ended (killed, or an error) while moving its finished output in" in caplog.text
    assert [c["md5"] for c in got["chunks"]] == [c["md5"] for c in read_manifest(ref)["chunks"]]
    assert output_files(out) == output_files(ref)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".steel.lock"]
