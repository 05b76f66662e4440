"""The tokenizer fingerprint tells apart two tokenizers whose non-special added token differs only in
lstrip/rstrip/single_word: the data pipeline's ordinary encoding matches such a token inside text, and those flags
change the ids around it, yet the print was the same (data prepared with one was accepted with the other).
A tokenizer whose flags are the defaults keeps the print it had."""
import copy
import hashlib
import json

import pytest
from tokenizers import AddedToken

from steel.tokenizer.engine import FINGERPRINT_FORMAT, fingerprint, load_encoder
from steel.tokenizer.train import train_bpe


@pytest.fixture(scope="module")
def tok_json():
    tok = train_bpe(["hello world <tool> foo bar"] * 20, 300)
    tok.add_tokens([AddedToken("<tool>", special=False)])
    return json.loads(tok.to_str())


def _with(tok_json, content, **flags):
    out = copy.deepcopy(tok_json)
    for t in out["added_tokens"]:
        if t["content"] == content:
            t.update(flags)
    return out


def _encode(tmp_path, name, tok_json, text):
    d = tmp_path / name
    d.mkdir()
    (d / "tokenizer.json").write_text(json.dumps(tok_json), encoding="utf-8")
    return load_encoder(d).encode(text)


@pytest.mark.parametrize("flag", ["lstrip", "rstrip", "single_word"])
def test_a_flag_that_changes_the_ids_changes_the_print(tmp_path, tok_json, flag):
    other = _with(tok_json, "<tool>", **{flag: True})
    text = "say <tool> and a<tool>b x"
    assert _encode(tmp_path, "a", tok_json, text) != _encode(tmp_path, "b", other, text)  # other ids
    assert fingerprint(other) != fingerprint(tok_json)


def test_default_flags_keep_the_print_made_before(tok_json):
    # the print as computed before flags joined it: (id, content, special) per added token
    model = dict(tok_json["model"])
    vocab, merges = model.pop("vocab"), model.pop("merges")
    head = {"format": FINGERPRINT_FORMAT, "model": model, "normalizer": tok_json.get("normalizer"),
            "pre_tokenizer": tok_json.get("pre_tokenizer"),
            "added_tokens": sorted((t["id"], t["content"], bool(t["special"])) for t in tok_json["added_tokens"])}
    h = hashlib.sha256(json.dumps(head, sort_keys=True, ensure_ascii=False).encode())
    h.update(b"\0vocab\0" + "\n".join(f"{i}\t{t}" for t, i in sorted(vocab.items(), key=lambda kv: kv[1])).encode())
    h.update(b"\0merges\0" + "\n".join(m if isinstance(m, str) else " ".join(m) for m in merges).encode())
    assert fingerprint(tok_json) == h.hexdigest()
    # a special token's flags leave the data's ids alone (its string is plain text there): same print
    assert fingerprint(_with(tok_json, "<|im_end|>", rstrip=True)) == fingerprint(tok_json)
