"""`eval contamination`'s error for prepared chunks without a tokenizer names every place it looked: a manifest
with a relative `tokenizer.spec` also records `tokenizer.dir` (the spec made absolute at prepare time), which
is tried too, so the message names that directory; an older manifest without it keeps the old message."""

from __future__ import annotations

import json

import pytest
from test_contamination_chunks import PLANTED, _prepared

from steel.cli import UserError
from steel.eval import contamination as C


def test_missing_tokenizer_error_names_the_manifests_tokenizer_dir(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    ids = tok.encode(PLANTED, add_special_tokens=False) + [tok.eos_token_id]
    d = _prepared(tmp_path / "data", tok, [ids], spec="tok")  # relative, found nowhere
    gone = tmp_path / "proj" / "tok"  # where prepare found it: since moved away
    manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    manifest["tokenizer"]["dir"] = str(gone)
    (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(UserError) as e:
        list(C.training_texts([d]))
    msg = str(e.value)
    assert f"none in {d / 'tokenizer'}, the manifest's tokenizer.spec or its tokenizer.dir {gone} (" in msg
    assert msg.endswith("pass --tokenizer DIR")

    del manifest["tokenizer"]["dir"]  # an older manifest: the message as before
    (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(UserError, match=r"none in .*data/tokenizer or the manifest's tokenizer\.spec \("):
        list(C.training_texts([d]))
