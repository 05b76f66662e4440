"""A wrong `init:` or `tokenizer:` is one error line naming the field, before anything is written.

A `tokenizer:` directory without tokenizer files crashed with transformers' ValueError traceback (exit 1),
a missing one with huggingface_hub's "Repo id must be in the form 'repo_name'", and neither named the
field; a missing `init` or one without a tokenizer named only the path (and told to pass `--tokenizer`,
which `steel sft` does not have).
"""

from __future__ import annotations

import json

import pytest

from steel.cli import main as steel_main


def _config(tmp_path, init, tokenizer=None):
    (tmp_path / "chat.json").write_text(json.dumps([{"instruction": "q", "output": "a"}]), encoding="utf-8")
    config = tmp_path / "sft.yaml"
    config.write_text(
        f"init: {init}\n" + (f"tokenizer: {tokenizer}\n" if tokenizer else "")
        + f"run_dir: {tmp_path / 'run'}\nmax_steps: 1\nmicro_batch: 1\n"
        "data: {seq_len: 64, packing: false, datasets: [{name: c, path: [chat.json]}]}\n",
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize("which", ["missing", "no tokenizer files"])
def test_a_wrong_tokenizer_dir_is_an_error_naming_the_field(tmp_path, tiny_llama_dir, capsys, which):
    tok = tmp_path / "tok"
    if which == "no tokenizer files":
        tok.mkdir()
        (tok / "notes.txt").write_text("not a tokenizer")
    assert steel_main(["sft", str(_config(tmp_path, tiny_llama_dir, tok))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"steel: error: tokenizer: {tok}")
    assert not (tmp_path / "run").exists()


def test_a_missing_init_is_an_error_naming_the_field(tmp_path, capsys):
    assert steel_main(["sft", str(_config(tmp_path, tmp_path / "nope"))]) == 2
    assert capsys.readouterr().err.strip() == f"steel: error: init: {tmp_path / 'nope'} does not exist"
    assert not (tmp_path / "run").exists()


def test_an_init_without_tokenizer_names_init_and_the_tokenizer_field(tmp_path, tiny_llama_dir, capsys):
    init = tmp_path / "model"
    init.mkdir()
    for name in ("config.json", "model.safetensors"):
        (init / name).write_bytes((tiny_llama_dir / name).read_bytes())
    assert steel_main(["sft", str(_config(tmp_path, init))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"steel: error: init: {init}: no tokenizer files found") and "tokenizer: DIR" in err
    assert "--tokenizer" not in err
    # With `tokenizer:` it trains.
    assert steel_main(["sft", str(_config(tmp_path, init, tiny_llama_dir))]) == 0
