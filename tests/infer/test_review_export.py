"""`steel export` writes OUT whole or not at all, and `--overwrite` replaces an earlier export, never
another directory's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from steel.cli import main as steel_main
from steel.infer import export as E


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _second_model(tmp_path: Path, tiny_llama_dir: Path) -> Path:
    """The tiny Llama with other weights: an export of it differs from one of tiny_llama_dir."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    src = tmp_path / "second"
    model.save_pretrained(str(src))
    AutoTokenizer.from_pretrained(str(tiny_llama_dir)).save_pretrained(str(src))
    return src


def _fail_tokenizer_save(monkeypatch):
    """The disk fills up once the weights are written (the tokenizer's save is the next write)."""
    from transformers import PreTrainedTokenizerBase

    def full(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", full)


def _no_leftovers(parent: Path, *keep: str) -> None:
    assert sorted(p.name for p in parent.iterdir()) == sorted(keep)


def test_failed_overwrite_keeps_the_previous_export(tmp_path, tiny_llama_dir, monkeypatch):
    # The new weights were written over the old export before the tokenizer failed: OUT held the new
    # model's weights with the old one's tokenizer files, and the good export was gone.
    parent = tmp_path / "exports"
    out = parent / "o"
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
    before = _files(out)
    second = _second_model(tmp_path, tiny_llama_dir)
    _fail_tokenizer_save(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        E.export(second, out, overwrite=True)
    assert _files(out) == before
    _no_leftovers(parent, "o")


def test_failed_export_leaves_no_output(tmp_path, tiny_llama_dir, monkeypatch):
    # A half-written OUT (weights, no tokenizer) was left behind, and the rerun was refused as "not empty".
    parent = tmp_path / "exports"
    _fail_tokenizer_save(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        E.export(tiny_llama_dir, parent / "o")
    _no_leftovers(parent)
    monkeypatch.undo()
    assert steel_main(["export", str(tiny_llama_dir), str(parent / "o")]) == 0


def test_overwrite_replaces_the_whole_export(tmp_path, tiny_llama_dir):
    # Files of the earlier export that this one does not write stayed: here the index of an earlier
    # sharded save, which vLLM reads to choose the weight files (model.safetensors is not in it).
    out = tmp_path / "o"
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
    fresh = sorted(p.name for p in out.iterdir())
    (out / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "model-00001-of-00002.safetensors"}}))
    second = _second_model(tmp_path, tiny_llama_dir)
    assert steel_main(["export", str(second), str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == fresh
    want = load_file(second / "model.safetensors")
    got = load_file(out / "model.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_overwrite_refuses_a_directory_that_is_not_a_model(tmp_path, tiny_llama_dir, capsys):
    # --overwrite wrote the model's files into any non-empty directory (a project, a home directory),
    # replacing a config.json of its own.
    out = tmp_path / "project"
    out.mkdir()
    (out / "config.json").write_text('{"name": "mine"}')
    (out / "notes.txt").write_text("keep me")
    (out / "src").mkdir()
    before = _files(out / "src"), (out / "config.json").read_text(), (out / "notes.txt").read_text()
    assert steel_main(["export", str(tiny_llama_dir), str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"{out}: --overwrite replaces an earlier export" in err, err
    assert (_files(out / "src"), (out / "config.json").read_text(), (out / "notes.txt").read_text()) == before
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt", "src"]


def test_overwrite_refuses_an_output_holding_the_source(tmp_path, tiny_llama_dir, capsys):
    # Replacing OUT as a whole would delete a source model inside it: a subdirectory is not an export's.
    import shutil

    out = tmp_path / "o"
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
    src = out / "inner"
    shutil.copytree(tiny_llama_dir, src)
    assert steel_main(["export", str(src), str(out), "--overwrite"]) == 2
    assert f"{out}: --overwrite replaces an earlier export" in capsys.readouterr().err
    assert (src / "config.json").is_file()


def test_output_that_is_a_file_is_refused(tmp_path, tiny_llama_dir, capsys):
    out = tmp_path / "o"
    out.write_text("a file")
    assert steel_main(["export", str(tiny_llama_dir), str(out), "--overwrite"]) == 2
    assert f"{out}: exists and is not a directory" in capsys.readouterr().err
    assert out.read_text() == "a file"
