"""A `steel export` directory's tokenizer says model_max_length = the model's positions (kept in the files for
plain-HF users), yet Steel's own commands on it print no transformers "Token indices sequence length is longer
..." warning: Steel checks lengths itself (eval mc drops shots to fit, generate refuses a long prompt in one line).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from test_mc import make_ceval_dir  # tests/eval, on the path by this directory's conftest
from tiny_models import SHORT_CONTEXT

from steel.cli import main as steel_main
from steel.infer.export import export
from steel.infer.load import load_tokenizer

WARNING = "Token indices sequence length is longer"


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def hf_said():
    """Every message transformers logs (its loggers do not propagate to the root, so caplog misses them)."""
    handler = _Records()
    root = logging.getLogger("transformers")
    root.addHandler(handler)
    yield handler.messages
    root.removeHandler(handler)


@pytest.fixture(scope="module")
def short_export(tmp_path_factory, short_llama_dir) -> Path:
    out = tmp_path_factory.mktemp("s11r") / "export"
    export(short_llama_dir, out)
    return out


def test_export_keeps_model_max_length_but_load_tokenizer_does_not_warn(short_export, hf_said):
    cfg = json.loads((short_export / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert cfg["model_max_length"] == SHORT_CONTEXT  # documented: plain-HF users' truncation reads it
    tok = load_tokenizer(short_export)
    assert tok.model_max_length == SHORT_CONTEXT  # unchanged in memory too (SFT saves this object)
    ids = tok("abc " * 200)["input_ids"]
    assert len(ids) > SHORT_CONTEXT
    assert not [m for m in hf_said if WARNING in m], hf_said


def test_generate_long_prompt_on_an_export_is_one_error_line(short_export, hf_said, capsys):
    argv = ["generate", "--model", str(short_export), "--prompt", "abc " * 200, "--device", "cpu"]
    assert steel_main(argv) == 2
    err = capsys.readouterr().err
    assert f"but the model's max_position_embeddings is {SHORT_CONTEXT}" in err, err
    assert not [m for m in hf_said if WARNING in m], hf_said


def test_eval_mc_dropping_shots_on_an_export_does_not_warn(tmp_path, short_export, hf_said, capsys):
    root = make_ceval_dir(tmp_path / "ceval")  # 1-shot prompts are 264..282 tokens: shots are dropped to fit
    out = tmp_path / "r.json"
    argv = ["eval", "mc", "--model", str(short_export), "--task", "ceval", "--data", str(root), "--shots", "2",
            "--limit", "1", "--device", "cpu", "--out", str(out)]
    assert steel_main(argv) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["fewer_shots"]["total"] > 0  # the long prompts were made
    assert not [m for m in hf_said if WARNING in m], hf_said
