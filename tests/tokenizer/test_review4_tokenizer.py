"""Review 4 of the tokenizer stage: defects found by a demanding user, each with its reproducer."""

from __future__ import annotations

import os

from steel.tokenizer.qwen import QWEN_FILES, build_qwen_tokenizer


def test_qwen_build_into_a_symlinked_out_dir_keeps_the_link(tmp_path, small_ranks_file):
    """OUT_DIR a link to scratch space: the build failed ('Not a directory' for a link to an empty
    directory; 'No such file' after moving a relative link, which then dangled) and replaced the link."""
    (tmp_path / "scratch").mkdir()
    os.symlink("scratch", tmp_path / "tok")  # relative, as `ln -s scratch tok` makes it
    out = build_qwen_tokenizer(tmp_path / "tok", ranks_path=small_ranks_file)
    assert out == tmp_path / "tok" and (tmp_path / "tok").is_symlink()
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == sorted(QWEN_FILES)
    # Rebuilt over a linked directory holding a file of the user's: kept, beside the new build.
    (tmp_path / "scratch" / "notes.txt").write_text("mine")
    build_qwen_tokenizer(tmp_path / "tok", ranks_path=small_ranks_file, default_system="Be brief.")
    assert (tmp_path / "tok").is_symlink() and os.readlink(tmp_path / "tok") == "scratch"
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == sorted([*QWEN_FILES, "notes.txt"])
    assert "Be brief." in (tmp_path / "scratch" / "tokenizer_config.json").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch", "tok"]  # no scratch sibling left
