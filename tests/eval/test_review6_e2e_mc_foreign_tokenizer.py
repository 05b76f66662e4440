"""`steel eval mc --tokenizer DIR` with a tokenizer that is not the model's (ids past its embeddings): one
error line naming the id and the vocabulary, as `steel generate` gives, instead of torch's
`IndexError: index out of range in self` traceback (a device-side assert that poisons the process on CUDA)."""

from __future__ import annotations

import pytest
from test_mc import make_ceval_dir
from tiny_models import build_byte_tokenizer, build_tiny_llama

from steel.cli import main as steel_main


@pytest.mark.parametrize("mode", [["--mode", "logprob"], ["--mode", "logprob", "--scoring", "continuation"],
                                  ["--mode", "generate", "--max-new-tokens", "2"]])
def test_mc_with_a_tokenizer_larger_than_the_model(tmp_path, capsys, mode):
    tok = tmp_path / "tok"
    build_byte_tokenizer(tok)  # 261 ids; Chinese text encodes to byte tokens up to id 255
    model = tmp_path / "model"
    build_tiny_llama(64).save_pretrained(str(model))  # 64 embedding rows
    bench = make_ceval_dir(tmp_path / "ceval")
    rc = steel_main(["eval", "mc", "--model", str(model), "--tokenizer", str(tok), "--task", "ceval",
                     "--data", str(bench), "--shots", "0", "--limit", "1", "--device", "cpu", *mode])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "outside the model's vocabulary (64 embeddings)" in err and "Traceback" not in err
