"""RUN_DIR/tokenizer/ keeps the custom tokenizer code its tokenizer_config.json's `auto_map` names: without
the `.py` file the copy, which generate/eval/export/sft try first, failed to load where the original did."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from tiny_models import build_byte_tokenizer  # noqa: E402

from steel.data.tokenize import dir_fingerprint  # noqa: E402
from steel.train.trainer import save_run_tokenizer  # noqa: E402


def _copy_to_run(tmp_path, tok, auto_map: dict) -> Path:
    """`tok` with `auto_map` in its tokenizer_config.json, as a data dir's tokenizer, copied to a run dir."""
    cfg = json.loads((tok / "tokenizer_config.json").read_text(encoding="utf-8"))
    (tok / "tokenizer_config.json").write_text(json.dumps(cfg | auto_map), encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"tokenizer": {"spec": str(tok), "fingerprint":
                                                                  dir_fingerprint(tok)}}), encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    save_run_tokenizer(run, [data])
    return run / "tokenizer"


@pytest.mark.parametrize("sibling", [False, True])
def test_run_tokenizer_keeps_the_auto_map_code(tmp_path, sibling):
    """`sibling`: the code imports a module beside it, as transformers' loader allows (a module that imports
    another in turn is copied too, but transformers 5.4's loader cannot load such a chain from any folder)."""
    tok = tmp_path / "tok"
    build_byte_tokenizer(tok)
    head = "from .helpers import BASE\n" if sibling else "from transformers import PreTrainedTokenizerFast as BASE\n"
    (tok / "tokenization_mine.py").write_text(head + "\n\nclass MineTokenizer(BASE):\n    pass\n", encoding="utf-8")
    if sibling:
        (tok / "helpers.py").write_text("from transformers import PreTrainedTokenizerFast as BASE  # noqa: F401\n",
                                        encoding="utf-8")
    (tok / "notes.py").write_text("raise SystemExit('not tokenizer code')\n", encoding="utf-8")
    copy = _copy_to_run(tmp_path, tok, {"auto_map": {"AutoTokenizer": [None, "tokenization_mine.MineTokenizer"]},
                                        "tokenizer_class": "MineTokenizer"})
    for f in ["tokenization_mine.py"] + ["helpers.py"] * sibling:
        assert (copy / f).read_bytes() == (tok / f).read_bytes()
    assert not (copy / "notes.py").exists()  # only the code auto_map names
    loaded = AutoTokenizer.from_pretrained(str(copy), trust_remote_code=True)
    assert type(loaded).__name__ == "MineTokenizer"
    assert loaded.encode("钢 steel") == AutoTokenizer.from_pretrained(str(tok), trust_remote_code=True).encode("钢 steel")


def test_unreadable_auto_map_code_is_a_warning_not_a_failed_start(tmp_path, caplog):
    """The data pipeline encodes with tokenizer.json and never runs this code, so code that cannot be read
    (not UTF-8, a relative import of a module that is not there) stopped `steel train` at its start with a
    UnicodeDecodeError / FileNotFoundError out of the tokenizer copy."""
    tok = tmp_path / "tok"
    build_byte_tokenizer(tok)
    (tok / "tokenization_mine.py").write_bytes(b"from .gone import BASE\n")
    (tok / "tokenization_latin.py").write_bytes("# caf\xe9\nfrom .x import y\n".encode("latin-1"))
    with caplog.at_level("WARNING", logger="steel"):
        copy = _copy_to_run(tmp_path, tok, {"auto_map": {"AutoTokenizer": ["tokenization_latin.L",
                                                                           "tokenization_mine.MineTokenizer"]}})
    for f in ("tokenization_mine.py", "tokenization_latin.py", "tokenizer.json"):
        assert (copy / f).read_bytes() == (tok / f).read_bytes()
    warned = [r.getMessage() for r in caplog.records if "were not copied" in r.getMessage()]
    assert len(warned) == 2, warned
