"""`--add-data` of a copy of a data dir the run already reads (session 15, F): the refusal said only
`duplicate chunk: COPY/x.bin has the same head/tail MD5 (...) as DATA/x.bin`, where the same copy given at a
fresh start said what it likely is and what to do; it now says that the chunk is already in the run, too."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_fixtures import make_data_dir, tiny_config  # noqa: E402

from steel.cli import main as steel_main  # noqa: E402


def test_appending_a_copy_names_it_a_copy_already_in_the_run(tmp_path, capsys):
    data = make_data_dir(tmp_path / "data", [400, 300])
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    assert steel_main(["train", str(cfg)]) == 0
    shutil.copytree(data, tmp_path / "copy")
    capsys.readouterr()
    assert steel_main(["train", str(cfg), "--set", "max_steps=3", "--add-data", str(tmp_path / "copy")]) == 2
    err = capsys.readouterr().err
    assert f"duplicate chunk: {tmp_path / 'copy' / 'chunk-00000.bin'} has the same head/tail MD5" in err, err
    assert "already in the run (a copy of a data dir? give only one of the two)" in err, err
