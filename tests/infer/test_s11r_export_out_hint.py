"""`steel export` into a non-empty OUT suggests --overwrite only where --overwrite would be taken (an earlier
export); for a directory of the user's own files it says to choose another OUT. It said "(use --overwrite)" for
any directory, and --overwrite was then refused ("this is not one (it has no config.json and weights)")."""

from __future__ import annotations

from steel.cli import main as steel_main


def _files(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_a_folder_of_user_files_is_not_told_to_use_overwrite(tmp_path, tiny_llama_dir, capsys):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "data.jsonl").write_text('{"text": "mine"}\n')
    before = _files(out)
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 2
    err = capsys.readouterr().err
    assert "use --overwrite" not in err, err
    assert f"{out}: output directory exists, is not empty and is not an earlier export" in err, err
    assert "choose another OUT" in err and "--overwrite only replaces an earlier export" in err, err
    # The hint is right: --overwrite is refused for it too, and the files stay.
    assert steel_main(["export", str(tiny_llama_dir), str(out), "--overwrite"]) == 2
    assert f"{out}: --overwrite replaces an earlier export" in capsys.readouterr().err
    assert _files(out) == before


def test_an_earlier_export_is_told_to_use_overwrite_which_then_works(tmp_path, tiny_llama_dir, capsys):
    out = tmp_path / "o"
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
    capsys.readouterr()
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: output directory is not empty: it holds a model" in err, err
    assert "use --overwrite to replace it as a whole" in err, err
    assert steel_main(["export", str(tiny_llama_dir), str(out), "--overwrite"]) == 0


def test_an_export_with_a_subdirectory_is_not_told_to_use_overwrite(tmp_path, tiny_llama_dir, capsys):
    out = tmp_path / "o"
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
    (out / "notes").mkdir()
    capsys.readouterr()
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 2
    err = capsys.readouterr().err
    assert "use --overwrite" not in err, err
    assert "it has subdirectories (notes)" in err and "choose another OUT" in err, err
