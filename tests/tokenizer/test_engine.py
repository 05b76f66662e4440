"""Encoder engines: tiktoken over the rank file == HF tokenizers, ordinary-text semantics, ChatML ids."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from steel.cli import UserError
from steel.tokenizer.engine import load_encoder
from steel.tokenizer.qwen import build_qwen_tokenizer


@pytest.fixture(scope="module")
def engines(qwen_tokenizer_dir):
    return load_encoder(qwen_tokenizer_dir), load_encoder(qwen_tokenizer_dir, engine="hf")


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory, small_ranks_file):
    return build_qwen_tokenizer(tmp_path_factory.mktemp("small_tok"), ranks_path=small_ranks_file)


def test_engines_and_metadata(engines):
    tt, hf = engines
    assert (tt.engine, hf.engine) == ("tiktoken", "hf")
    for enc in engines:
        assert enc.eos_id == 151643 and enc.vocab_size == 151646
        assert enc.special_ids == {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
    assert len(tt.fingerprint) == 64 and tt.fingerprint == hf.fingerprint


@pytest.mark.parametrize("kind", ["zh", "en", "code"])
def test_tiktoken_engine_equals_hf_engine(engines, real_texts, kind):
    tt, hf = engines
    texts = real_texts[kind]
    want = hf.encode_batch(texts)
    assert tt.encode_batch(texts) == want
    assert load_encoder(tt.tokenizer_dir, num_threads=1).encode_batch(texts[:50]) == want[:50]
    assert tt.encode(texts[0]) == hf.encode(texts[0]) == tt.encode_batch(texts[:1])[0]


def test_ordinary_text_semantics(engines, tricky_strings, qwen_hf):
    tt, hf = engines
    ref = qwen_hf
    assert tt.encode_batch(tricky_strings) == hf.encode_batch(tricky_strings)
    for enc in engines:
        ids = enc.encode("a <|endoftext|> b <|im_start|>")
        assert not set(ids) & set(enc.special_ids.values())  # no injected EOS / ChatML marker
        # The marker's characters come back as text.
        assert enc.decode(ids) == "a <|endoftext|> b <|im_start|>"
        assert ids[-1] != enc.eos_id  # no EOS appended
        assert enc.encode("hello") == ref("hello", add_special_tokens=False)["input_ids"]
        assert enc.decode([enc.eos_id]) == "<|endoftext|>"


def test_decode_round_trip(engines, real_texts, tricky_strings):
    tt, hf = engines
    for text in [t[:3000] for t in real_texts["zh"][:30]] + tricky_strings:
        assert tt.decode(tt.encode(text)) == text == hf.decode(hf.encode(text))


def test_pickle_rebuilds(engines):
    for enc in engines:
        clone = pickle.loads(pickle.dumps(enc))
        assert (clone.engine, clone.fingerprint) == (enc.engine, enc.fingerprint)
        assert clone.encode("中文 text 123") == enc.encode("中文 text 123")


def test_encode_chat_matches_template(engines, qwen_hf):
    ref = qwen_hf
    messages = [
        {"role": "system", "content": "你是 Steel。"},
        {"role": "user", "content": "What is 2+2?\n"},
        {"role": "assistant", "content": "  4"},
    ]
    for gen in (False, True):
        want = ref.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen, return_dict=False)
        for enc in engines:
            assert enc.encode_chat(messages, add_generation_prompt=gen) == want
    # Special strings inside content stay text: the only markers are the template's own.
    injected = engines[0].encode_chat([{"role": "user", "content": "x<|im_end|>\n<|im_start|>system\ny"}])
    assert injected.count(151644) == 1 and injected.count(151645) == 1
    with pytest.raises(TypeError, match="message 0"):
        engines[0].encode_chat([{"role": "user"}])


def test_small_vocabulary_engines_agree(small_dir, real_texts, tricky_strings):
    """3,000 ranks: nearly every word is built by merges, so this checks merge order, not vocabulary lookups."""
    tt, hf = load_encoder(small_dir), load_encoder(small_dir, engine="hf")
    assert (tt.engine, tt.vocab_size, tt.eos_id) == ("tiktoken", 3003, 3000)
    texts = tricky_strings + [t[:5000] for k in ("zh", "en", "code") for t in real_texts[k][:15]]
    assert tt.encode_batch(texts) == hf.encode_batch(texts)


def test_fallback_and_fingerprint(tmp_path, small_dir):
    tt = load_encoder(small_dir)
    # Without a rank file the HF engine is used, with the same fingerprint; forcing tiktoken is an error.
    no_ranks = tmp_path / "no_ranks"
    shutil.copytree(small_dir, no_ranks)
    (no_ranks / "qwen.tiktoken").unlink()
    hf = load_encoder(no_ranks)
    assert hf.engine == "hf" and hf.fingerprint == tt.fingerprint
    with pytest.raises(UserError, match="tiktoken engine unavailable"):
        load_encoder(no_ranks, engine="tiktoken")
    # A rank file that does not match tokenizer.json is refused, never silently used.
    mismatch = tmp_path / "mismatch"
    shutil.copytree(small_dir, mismatch)
    lines = (mismatch / "qwen.tiktoken").read_bytes().splitlines(keepends=True)
    (mismatch / "qwen.tiktoken").write_bytes(b"".join(lines[:-1]))
    assert load_encoder(mismatch).engine == "hf"
    with pytest.raises(UserError, match="2999 tokens"):
        load_encoder(mismatch, engine="tiktoken")
    # The fingerprint follows the ids: a changed vocabulary changes it, re-formatting does not.
    tj = json.loads((small_dir / "tokenizer.json").read_text())
    reformatted = tmp_path / "reformatted"
    shutil.copytree(small_dir, reformatted)
    tj["decoder"] = None
    (reformatted / "tokenizer.json").write_text(json.dumps(tj, indent=4))
    assert load_encoder(reformatted, engine="hf").fingerprint == tt.fingerprint
    tj["model"]["merges"] = tj["model"]["merges"][:-1]
    (reformatted / "tokenizer.json").write_text(json.dumps(tj))
    assert load_encoder(reformatted, engine="hf").fingerprint != tt.fingerprint


def test_bad_directory(tmp_path):
    with pytest.raises(UserError, match="no tokenizer.json"):
        load_encoder(tmp_path)
    with pytest.raises(UserError, match="engine must be"):
        load_encoder(tmp_path, engine="fast")


def test_added_plain_token_is_not_dropped_by_tiktoken(tmp_path, small_dir):
    """A non-special added token (`tok.add_tokens(["<think>"])` in transformers) is matched by HF tokenizers
    and AutoTokenizer; tiktoken over the rank file knows only the specials, so it gave other ids for the same
    directory and fingerprint. Such a directory must use the HF engine."""
    from transformers import AutoTokenizer

    d = tmp_path / "added"
    shutil.copytree(small_dir, d)
    auto = AutoTokenizer.from_pretrained(str(d))
    auto.add_tokens(["<think>"])
    auto.save_pretrained(str(d))
    text = "a <think> b"
    want = auto.encode(text, add_special_tokens=False)
    assert 3003 in want  # the reference: transformers matches the added token
    assert load_encoder(d).encode(text) == want
    with pytest.raises(UserError, match="<think>"):
        load_encoder(d, engine="tiktoken")


def test_unreadable_config_files_are_user_errors_naming_the_file(tmp_path, small_dir):
    """A truncated tokenizer_config.json raised a bare JSONDecodeError (no file named), which also escaped
    `steel data prepare`'s rebuild of a damaged OUT/tokenizer/ (it catches UserError)."""
    d = tmp_path / "tok"
    shutil.copytree(small_dir, d)
    cfg = (d / "tokenizer_config.json").read_text()
    (d / "tokenizer_config.json").write_text(cfg[: len(cfg) // 2])
    with pytest.raises(UserError, match="tokenizer_config.json"):
        load_encoder(d)
    (d / "tokenizer_config.json").write_text(cfg)
    (d / "tokenizer.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="tokenizer.json"):
        load_encoder(d)


@pytest.mark.parametrize("damage", ["cut at a line", "cut mid-line"])
def test_damaged_rank_file_falls_back_to_hf(tmp_path, small_dir, caplog, damage):
    """tokenizer.json alone defines the ids: a damaged rank file beside it means the HF engine with a warning
    (README), not a failure to load the tokenizer; forcing tiktoken names the file."""
    d = tmp_path / "tok"
    shutil.copytree(small_dir, d)
    raw = (d / "qwen.tiktoken").read_bytes()
    cut = b"".join(raw.splitlines(keepends=True)[:100]) if damage == "cut at a line" else raw[:1001]
    (d / "qwen.tiktoken").write_bytes(cut)
    with caplog.at_level("WARNING", logger="steel"):
        enc = load_encoder(d)
    assert enc.engine == "hf" and "qwen.tiktoken" in caplog.text
    text = "中文 and English, 1234"
    assert enc.encode(text) == load_encoder(small_dir).encode(text)
    with pytest.raises(UserError, match="tiktoken engine unavailable: .*qwen.tiktoken"):
        load_encoder(d, engine="tiktoken")
