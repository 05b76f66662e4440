"""`steel eval contamination --data PREPARED_DIR` whose tokenizer carries custom code (`auto_map` in its
tokenizer_config.json): the chunks are decoded with its tokenizer.json, the inverse of the data pipeline's
encoding, which needs none of that code. AutoTokenizer stopped it with a traceback asking for
trust_remote_code (a y/N prompt in a terminal)."""

from __future__ import annotations

import json
import shutil

from test_contamination_chunks import PLANTED, _prepared
from tiny_models import build_byte_tokenizer

from steel.eval import contamination as C
from steel.tokenizer.engine import fingerprint


def test_chunks_of_a_custom_code_tokenizer_are_decoded(tmp_path):
    tok_dir = tmp_path / "data" / "tokenizer"
    tok = build_byte_tokenizer(tok_dir)
    (tok_dir / "tokenization_mine.py").write_text(
        "from transformers import PreTrainedTokenizerFast as BASE\n\n\nclass MineTokenizer(BASE):\n    pass\n",
        encoding="utf-8")
    cfg = json.loads((tok_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg |= {"auto_map": {"AutoTokenizer": [None, "tokenization_mine.MineTokenizer"]}, "tokenizer_class": "MineTokenizer"}
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    eos = tok.eos_token_id
    ids = tok.encode("别的文本", add_special_tokens=False) + [eos] + tok.encode(PLANTED, add_special_tokens=False)
    fp = fingerprint(json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8")))
    d = _prepared(tmp_path / "data", tok, [ids + [eos]], fp=fp)
    assert list(C.training_texts([d])) == ["别的文本", PLANTED]  # DATA/tokenizer found and used
    shutil.move(tok_dir, tmp_path / "tok")
    assert list(C.training_texts([d], tmp_path / "tok")) == ["别的文本", PLANTED]  # --tokenizer too
