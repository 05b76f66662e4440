"""Qwen's tokenizer rebuilt offline: ids equal an independent tiktoken reference on real text."""

from __future__ import annotations

import json

import pytest
import tiktoken
from tiktoken.load import load_tiktoken_bpe
from transformers import AutoTokenizer

from steel.cli import UserError, main
from steel.tokenizer import load_tokenizer
from steel.tokenizer.qwen import chatml_template, find_qwen_ranks, read_ranks

# Written out here rather than imported, so a typo in steel's copy fails the comparison.
PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def reference_encoding(ranks_path) -> tiktoken.Encoding:
    """tiktoken built locally from the rank file with tiktoken's own loader (no download, no cache)."""
    import os

    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # "" = read the file directly; the cache is keyed by path only
    try:
        ranks = load_tiktoken_bpe(str(ranks_path))
    finally:
        if old is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old
    n = len(ranks)
    specials = {"<|endoftext|>": n, "<|im_start|>": n + 1, "<|im_end|>": n + 2}
    return tiktoken.Encoding("reference", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens=specials)


@pytest.fixture(scope="module")
def qwen(qwen_hf):
    return qwen_hf


@pytest.fixture(scope="module")
def reference():
    return reference_encoding(find_qwen_ranks())


def test_special_tokens_and_size(qwen, qwen_tokenizer_dir):
    assert len(qwen) == 151646
    assert qwen.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [
        151643,
        151644,
        151645,
    ]
    assert qwen.eos_token == "<|endoftext|>" and qwen.eos_token_id == 151643
    assert qwen.pad_token_id == 151643 and qwen.bos_token is None
    # The rank file travels with the tokenizer so the tiktoken engine can use it.
    assert (qwen_tokenizer_dir / "qwen.tiktoken").read_bytes() == find_qwen_ranks().read_bytes()
    # AutoTokenizer loads the directory too, with the same ids.
    auto = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir))
    assert auto("你好，世界！Hello")["input_ids"] == qwen("你好，世界！Hello")["input_ids"]


@pytest.mark.parametrize("kind", ["zh", "en", "code"])
def test_ids_equal_tiktoken_on_real_text(qwen, reference, real_texts, kind):
    texts = real_texts[kind]
    got = qwen(texts, add_special_tokens=False)["input_ids"]
    n_tokens = 0
    for i, (text, ids) in enumerate(zip(texts, got)):
        want = reference.encode(text, allowed_special="all")
        assert ids == want, f"{kind} document {i} differs: {text[:80]!r}"
        n_tokens += len(ids)
    n_chars = sum(map(len, texts))
    assert n_chars > 100_000
    # Sanity of scale, hand-known for Qwen: ~1-1.6 Chinese chars per token, ~3-5 English/code chars per token.
    lo, hi = {"zh": (1.0, 1.8), "en": (3.0, 5.0), "code": (2.5, 5.0)}[kind]
    assert lo < n_chars / n_tokens < hi


def test_ids_equal_tiktoken_on_tricky_strings(qwen, reference, tricky_strings):
    for text in tricky_strings:
        assert qwen(text, add_special_tokens=False)["input_ids"] == reference.encode(
            text, allowed_special="all"
        ), text


def test_decode_round_trip(qwen, real_texts, tricky_strings):
    texts = [t[:2000] for kind in ("zh", "en", "code") for t in real_texts[kind][:20]] + tricky_strings
    for text in texts:
        assert qwen.decode(qwen(text, add_special_tokens=False)["input_ids"]) == text


def test_chat_template(qwen):
    messages = [
        {"role": "system", "content": "你是Steel。"},
        {"role": "user", "content": "1+1=?"},
        {"role": "assistant", "content": "2"},
    ]
    expected = (
        "<|im_start|>system\n你是Steel。<|im_end|>\n<|im_start|>user\n1+1=?<|im_end|>\n"
        "<|im_start|>assistant\n2<|im_end|>\n"
    )
    assert qwen.apply_chat_template(messages, tokenize=False) == expected
    gen = qwen.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert (
        gen
        == "<|im_start|>system\n你是Steel。<|im_end|>\n<|im_start|>user\n1+1=?<|im_end|>\n<|im_start|>assistant\n"
    )
    # Optional default system message, inserted only when the conversation has none.
    tpl = chatml_template("You are a helpful assistant.")
    with_default = qwen.apply_chat_template(messages[1:2], tokenize=False, chat_template=tpl)
    assert (
        with_default
        == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n1+1=?<|im_end|>\n"
    )
    assert qwen.apply_chat_template(messages, tokenize=False, chat_template=tpl) == expected
    # Tokenized, the markers are single special ids.
    ids = qwen.apply_chat_template(messages[1:2], tokenize=True, return_dict=False)
    assert ids[0] == 151644 and ids[-2:] == [151645, 198]  # 198 = "\n"


def test_config_files(qwen_tokenizer_dir):
    cfg = json.loads((qwen_tokenizer_dir / "tokenizer_config.json").read_text())
    assert cfg["eos_token"] == "<|endoftext|>" and cfg["pad_token"] == "<|endoftext|>"
    assert cfg["chat_template"] == chatml_template()


def test_bad_rank_file_names_line(tmp_path):
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("IQ== 0\nnot-base64!! 1\n")
    with pytest.raises(UserError, match=r"bad.tiktoken:2: bad rank line"):
        read_ranks(bad)
    gap = tmp_path / "gap.tiktoken"
    gap.write_text("IQ== 0\nIg== 2\n")
    with pytest.raises(UserError, match="not exactly 0..1"):
        read_ranks(gap)


def test_cli_small_vocabulary(tmp_path, small_ranks_file, tricky_strings, capsys):
    """`steel tokenizer qwen --ranks` on a 3,000-rank prefix of Qwen's file: merge order, not lookups, decides ids."""
    out = tmp_path / "tok"
    assert main(["tokenizer", "qwen", str(out), "--ranks", str(small_ranks_file)]) == 0
    # the message tells what was written (it said "151,646 ids; <|endoftext|>=151643" for any rank file)
    assert "(3,003 ids; <|endoftext|>=3000, <|im_start|>=3001, <|im_end|>=3002;" in capsys.readouterr().out
    tok = load_tokenizer(out)
    ref = reference_encoding(small_ranks_file)
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"]) == [3000, 3002]
    for text in tricky_strings + ["internationalization 中华人民共和国 tokenizers"]:
        assert tok(text, add_special_tokens=False)["input_ids"] == ref.encode(text, allowed_special="all"), (
            text
        )
    assert main(["tokenizer", "qwen", str(out), "--ranks", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_keeps_another_tokenizer_unless_overwrite(tmp_path, small_ranks_file, capsys):
    out = tmp_path / "tok"
    build = ["tokenizer", "qwen", str(out), "--ranks", str(small_ranks_file)]
    assert main(build) == 0
    before = (out / "tokenizer_config.json").read_bytes()
    assert main(build) == 0  # the same build again: harmless, nothing rewritten
    assert "already holds this Qwen tokenizer" in capsys.readouterr().out
    # Another tokenizer in OUT_DIR (here: another default system prompt) was replaced without a word.
    assert main([*build, "--default-system", "你是Steel"]) == 2
    assert f"OUT_DIR {out}: directory is not empty" in capsys.readouterr().err
    assert (out / "tokenizer_config.json").read_bytes() == before
    assert main([*build, "--default-system", "你是Steel", "--overwrite"]) == 0
    assert "你是Steel" in (out / "tokenizer_config.json").read_text(encoding="utf-8") + (
        (out / "chat_template.jinja").read_text(encoding="utf-8") if (out / "chat_template.jinja").exists() else "")


def test_missing_dashscope_says_how_to_install(monkeypatch, tmp_path):
    import importlib.util
    import site
    import sys

    import steel.tokenizer.qwen as qwen_mod

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    monkeypatch.setattr(site, "getsitepackages", lambda: [])
    monkeypatch.setattr(site, "getusersitepackages", lambda: str(tmp_path))
    with pytest.raises(UserError, match="pip install --no-deps dashscope"):
        qwen_mod.find_qwen_ranks()
    # Found by scanning sys.path alone, without importing anything.
    (tmp_path / "dashscope" / "resources").mkdir(parents=True)
    (tmp_path / "dashscope" / "resources" / "qwen.tiktoken").write_text("IQ== 0\n")
    assert qwen_mod.find_qwen_ranks() == tmp_path / "dashscope" / "resources" / "qwen.tiktoken"
    assert "dashscope" not in sys.modules


def test_fast_tokenizer_is_byte_identical_to_transformers_converter(small_ranks_file):
    # Independent reference: transformers' own TikTokenConverter, reading the rank file with tiktoken.
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from steel.tokenizer.qwen import QWEN_PATTERN, SPECIAL_TOKENS, build_fast_tokenizer

    ref = TikTokenConverter(vocab_file=str(small_ranks_file), pattern=QWEN_PATTERN,
                            extra_special_tokens=list(SPECIAL_TOKENS)).converted()
    assert build_fast_tokenizer(read_ranks(small_ranks_file)).to_str() == ref.to_str()


def test_rank_file_without_every_byte_is_refused(tmp_path, small_ranks_file, capsys):
    """A cut rank file (a download stopped at a line boundary) still has ranks 0..n-1, but lacks single
    bytes: the build wrote a tokenizer on which HF encoded '中' as [] (text silently lost) and tiktoken
    panicked. A byte-level BPE needs all 256 bytes as tokens."""
    cut = tmp_path / "cut.tiktoken"
    cut.write_bytes(b"".join(small_ranks_file.read_bytes().splitlines(keepends=True)[:100]))
    assert len(read_ranks(small_ranks_file)) == 3000  # the full prefix is fine
    with pytest.raises(UserError, match=r"cut.tiktoken: .*156 of the 256 single bytes"):
        read_ranks(cut)
    (tmp_path / "empty.tiktoken").write_bytes(b"")
    assert main(["tokenizer", "qwen", str(tmp_path / "out"), "--ranks", str(tmp_path / "empty.tiktoken")]) == 2
    assert "256 of the 256 single bytes" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ranks_that_is_a_directory_is_not_called_missing(tmp_path, capsys):
    assert main(["tokenizer", "qwen", str(tmp_path / "out"), "--ranks", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"rank file {tmp_path} is a directory" in err and "does not exist" not in err
    assert main(["tokenizer", "qwen", str(tmp_path / "out"), "--ranks", str(tmp_path / "nope")]) == 2
    assert f"rank file {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
