"""`steel eval contamination --data PREPARED_DIR`: documents cut across chunks, and the tokenizer lookup."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_mc import make_ceval_dir
from tiny_models import tiny_fingerprint

from steel.cli import UserError
from steel.data.chunks import write_chunk, write_manifest
from steel.data.tokenize import tokenizer_dir_for
from steel.eval import contamination as C
from steel.tokenizer.engine import fingerprint

# high_school_history question 2 of make_ceval_dir, stem + options run together.
PLANTED = "关于古代货币制度的说法，下列哪项正确古代货币制度甲乙丙丁"


def _prepared(root, tok, chunks: list[list[int]], spec: str | None = None, fp: str | None = None):
    """A data dir of one source whose documents run across `chunks`, as prepare writes it."""
    fp = fp or tiny_fingerprint()
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, ids in enumerate(chunks):
        write_chunk(root / f"x-{i:05d}.bin", np.array(ids), len(tok), fp)
        entries.append({"file": f"x-{i:05d}.bin", "tokens": len(ids), "md5": "-", "source": "x"})
    write_manifest(root, {
        "total_tokens": sum(map(len, chunks)), "chunks": entries, "sources": {}, "config": {},
        "tokenizer": {"fingerprint": fp, "vocab_size": len(tok), "eos_id": tok.eos_token_id, "spec": spec},
    })
    return root


def test_document_across_a_chunk_boundary_is_one_document(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    eos = tok.eos_token_id
    planted = tok.encode(PLANTED, add_special_tokens=False)  # byte-level: 3 ids per CJK character
    ids = tok.encode("别的文本", add_special_tokens=False) + [eos] + planted + [eos]
    ids += tok.encode("再一篇", add_special_tokens=False) + [eos]
    cut = len(ids) - len(planted) // 2 - 1 - len(tok.encode("再一篇", add_special_tokens=False)) - 1
    cut += 1 if cut % 3 == 0 else 0  # inside a character's UTF-8 bytes
    d = _prepared(tmp_path / "data", tok, [ids[:cut], ids[cut:]])
    texts = list(C.training_texts([d], tiny_tokenizer_dir))
    assert texts == ["别的文本", PLANTED, "再一篇"]  # once, whole, no U+FFFD at the cut
    # Every n-gram of the question is found, those across the cut too (threshold 1.0).
    bench = make_ceval_dir(tmp_path / "ceval")
    res = C.contamination_report([d], "ceval", bench, None, n=8, threshold=1.0, tokenizer_dir=tiny_tokenizer_dir)
    assert res["training"]["documents"] == 3
    assert res["subjects"]["high_school_history"]["contaminated"] == 1
    assert [f["where"].rsplit("/", 1)[1] for f in res["flagged"]] == ["high_school_history_val.csv:4"]


def test_tokenizer_named_at_prepare_time_is_found_by_fingerprint(tmp_path, tiny_tokenizer_dir):
    """Data prepared with `tokenizer: DIR` has no DATA/tokenizer/: the manifest's spec is used when its
    fingerprint is the manifest's."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    fp = fingerprint(json.loads((tiny_tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8")))
    ids = tok.encode(PLANTED, add_special_tokens=False) + [tok.eos_token_id]
    d = _prepared(tmp_path / "d2", tok, [ids], spec=str(tiny_tokenizer_dir), fp=fp)
    assert tokenizer_dir_for(d) == tiny_tokenizer_dir
    assert list(C.training_texts([d])) == [PLANTED]
    # A relative spec (relative to prepare's working directory) is tried from the data dir's parent too.
    rel = _prepared(tmp_path / "d3", tok, [ids], spec=tiny_tokenizer_dir.name, fp=fp)
    (tmp_path / tiny_tokenizer_dir.name).symlink_to(tiny_tokenizer_dir)
    assert tokenizer_dir_for(rel) == tmp_path / tiny_tokenizer_dir.name
    # Another tokenizer under that name (its fingerprint differs) is not taken.
    other = _prepared(tmp_path / "d4", tok, [ids], spec=str(tiny_tokenizer_dir), fp="0" * 64)
    assert tokenizer_dir_for(other) is None
    with pytest.raises(UserError, match=r"d4: chunks need a tokenizer.*fingerprint differs.*--tokenizer DIR"):
        list(C.training_texts([other]))
    # DATA/tokenizer/ comes first, when its fingerprint is the manifest's (a stale one, left by a prepare
    # with another tokenizer, is not taken either).
    (other / "tokenizer").symlink_to(tiny_tokenizer_dir)
    assert tokenizer_dir_for(other) is None
    (d / "tokenizer").symlink_to(tiny_tokenizer_dir)
    assert tokenizer_dir_for(d) == d / "tokenizer"


@pytest.mark.parametrize("name", ["t.jsonl", "t.json", "t.jsonl.gz"])
def test_text_file_with_bom(tmp_path, name):
    import gzip

    data = b"\xef\xbb\xbf" + json.dumps({"text": PLANTED}, ensure_ascii=False).encode() + b"\n"
    p = tmp_path / name
    p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert list(C.training_texts([p])) == [PLANTED]
