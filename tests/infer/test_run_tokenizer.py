"""The tokenizer of a run trained on data prepared with `tokenizer: DIR`: the manifest's `tokenizer.spec`,
taken only when its fingerprint is the manifest's; relative `data.dirs` found from another directory."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_dirs import make_data_dir, make_run_dir, tokenizer_fingerprint  # noqa: E402

from steel.cli import main as steel_main  # noqa: E402
from steel.infer.load import find_tokenizer_dir  # noqa: E402


@pytest.fixture
def tiny_model(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))


def test_tokenizer_from_manifest_spec(tmp_path, tiny_tokenizer_dir, tiny_model, capsys):
    tok = tmp_path / "mytok"
    shutil.copytree(tiny_tokenizer_dir, tok)
    data = make_data_dir(tmp_path / "data", str(tok), tokenizer_fingerprint(tok))  # no data/tokenizer/
    run = make_run_dir(tmp_path / "run", tiny_model, [str(data)])
    assert find_tokenizer_dir(run, None) == tok
    assert find_tokenizer_dir(run / "checkpoints" / "step-2", None) == tok
    rc = steel_main(["generate", "--model", str(run), "--prompt", "hi", "--max-new-tokens", "2",
                     "--temperature", "0", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err


def test_tokenizer_spec_with_other_fingerprint_refused(tmp_path, tiny_tokenizer_dir, tiny_model, capsys):
    tok = tmp_path / "mytok"
    shutil.copytree(tiny_tokenizer_dir, tok)
    data = make_data_dir(tmp_path / "data", str(tok), "0" * 64)  # prepared with another tokenizer
    run = make_run_dir(tmp_path / "run", tiny_model, [str(data)])
    rc = steel_main(["generate", "--model", str(run), "--prompt", "hi", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "fingerprint differs" in err and "--tokenizer" in err


def test_relative_dirs_found_from_another_cwd(tmp_path, tiny_tokenizer_dir, tiny_model, monkeypatch):
    # Trained from `proj/` with run_dir runs/r, data.dirs [data/zh] and tokenizer: tok (all relative).
    proj = tmp_path / "proj"
    shutil.copytree(tiny_tokenizer_dir, proj / "tok")
    make_data_dir(proj / "data" / "zh", "tok", tokenizer_fingerprint(proj / "tok"))
    run = make_run_dir(proj / "runs" / "r", tiny_model, ["data/zh"], typed_run_dir="runs/r")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert find_tokenizer_dir(run, None) == proj / "tok"
    monkeypatch.chdir(proj)  # from the training directory, relative paths work as typed
    assert find_tokenizer_dir(Path("runs/r"), None).resolve() == (proj / "tok").resolve()


def test_run_tokenizer_is_the_datas_not_a_neighbours(tmp_path, tiny_tokenizer_dir, tiny_model):
    # `runs/r` trained on data of one tokenizer, beside `runs/tokenizer` holding another (`steel tokenizer
    # train --out runs/tokenizer`): the neighbour (path.parent/tokenizer) was taken before the data's, and
    # generate/chat encoded with a vocabulary the model never saw, without a word.
    from tiny_models import build_metaspace_tokenizer

    tok = tmp_path / "tok"
    shutil.copytree(tiny_tokenizer_dir, tok)
    data = make_data_dir(tmp_path / "data", str(tok), tokenizer_fingerprint(tok))
    build_metaspace_tokenizer(tmp_path / "runs" / "tokenizer")
    run = make_run_dir(tmp_path / "runs" / "r", tiny_model, [str(data)])
    assert find_tokenizer_dir(run, None) == tok
    assert find_tokenizer_dir(run / "checkpoints" / "step-2", None) == tok
    build_metaspace_tokenizer(tmp_path / "tokenizer")  # the grandparent of the run dir
    assert find_tokenizer_dir(run, None) == tok
    # A run's own tokenizer/ (SFT runs save theirs there) still comes first, for its checkpoints too.
    shutil.copytree(tiny_tokenizer_dir, run / "tokenizer")
    assert find_tokenizer_dir(run, None) == run / "tokenizer"
    assert find_tokenizer_dir(run / "checkpoints" / "step-2", None) == run / "tokenizer"


@pytest.mark.parametrize("which", ["missing", "empty"])
def test_a_bad_tokenizer_flag_is_one_line_naming_it(tmp_path, tiny_llama_dir, capsys, which):
    # --tokenizer /nope said "Repo id must be in the form 'repo_name'" (transformers took it for a hub id), and a
    # folder without tokenizer files was a ValueError traceback (exit 1), after the model had loaded.
    tok = tmp_path / "tok"
    if which == "empty":
        tok.mkdir()
    rc = steel_main(["generate", "--model", str(tiny_llama_dir), "--tokenizer", str(tok), "--prompt", "hi",
                     "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"steel: error: --tokenizer {tok}: ")
    assert ("not a directory" if which == "missing" else "no tokenizer.json or tokenizer_config.json") in err
