"""Review of read_manifest during a live prepare swap (148523e): a reader whose look at OUT/manifest.json fell between
the swap's removal of the previous manifest and its end reads the new output, however soon the swap ended."""

from __future__ import annotations

import json
from pathlib import Path

from steel.data.chunks import MANIFEST, read_manifest
from steel.data.swap import JOURNAL, swap_in


def manifest(tokens: int) -> dict:
    return {"format": "steel-data-manifest", "version": 1, "total_tokens": tokens, "chunks": [], "tokenizer": {},
            "sources": {}}


def test_a_read_that_missed_the_manifest_while_a_swap_ran_reads_the_new_one(tmp_path, monkeypatch):
    import logging

    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps(manifest(1)), encoding="utf-8")  # the previous output
    stage = out / ".partial"
    stage.mkdir()
    real_read, looks = Path.read_text, []

    def read_text(self, *args, **kwargs):
        if self == out / MANIFEST and not looks:
            # The reader's open comes while the prepare has removed the previous manifest (the swap under way);
            # the prepare then ends its swap before the reader looks again: the journal is gone.
            looks.append(self)
            (out / MANIFEST).unlink()
            error = FileNotFoundError(2, "No such file or directory")
            swap_in(out, stage, lambda d: (d / MANIFEST).write_text(json.dumps(manifest(2)), encoding="utf-8"),
                    [], None, logging.getLogger("test.s15v1"))
            assert (out / MANIFEST).exists() and not (out / JOURNAL).exists()
            raise error
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    # (at a845530: ChunkFormatError "cannot read manifest (No such file or directory)", the new output in place)
    assert read_manifest(out)["total_tokens"] == 2
    assert looks
