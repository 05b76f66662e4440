"""Review 4 of the tokenizer stage: defects found by a demanding user, each with its reproducer."""

from __future__ import annotations

import base64
import os

import pytest

from steel.tokenizer.engine import load_encoder
from steel.tokenizer.qwen import QWEN_FILES, build_qwen_tokenizer


def test_qwen_build_into_a_symlinked_out_dir_keeps_the_link(tmp_path, small_ranks_file):
    """OUT_DIR a link to scratch space: the build failed ('Not a directory' for a link to an empty
    directory; 'No such file' after moving a relative link, which then dangled) and replaced the link."""
    (tmp_path / "scratch").mkdir()
    os.symlink("scratch", tmp_path / "tok")  # relative, as `ln -s scratch tok` makes it
    out = build_qwen_tokenizer(tmp_path / "tok", ranks_path=small_ranks_file)
    assert out == tmp_path / "tok" and (tmp_path / "tok").is_symlink()
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == sorted(QWEN_FILES)
    # Rebuilt over a linked directory holding a file of the user's: kept, beside the new build.
    (tmp_path / "scratch" / "notes.txt").write_text("mine")
    build_qwen_tokenizer(tmp_path / "tok", ranks_path=small_ranks_file, default_system="Be brief.")
    assert (tmp_path / "tok").is_symlink() and os.readlink(tmp_path / "tok") == "scratch"
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == sorted([*QWEN_FILES, "notes.txt"])
    assert "Be brief." in (tmp_path / "scratch" / "tokenizer_config.json").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch", "tok"]  # no scratch sibling left


# Written out, not imported from steel, so that a typo in steel's copy fails the comparison.
PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def reference_tiktoken():
    """tiktoken over dashscope's rank file, parsed here in two lines (independent of steel's reader)."""
    import tiktoken

    from steel.tokenizer.qwen import find_qwen_ranks

    lines = find_qwen_ranks().read_bytes().split()
    ranks = {base64.b64decode(t): int(r) for t, r in zip(lines[::2], lines[1::2])}
    return tiktoken.Encoding("reference", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens={})


@pytest.fixture(scope="module")
def engines(qwen_tokenizer_dir):
    return {name: load_encoder(qwen_tokenizer_dir, engine=name) for name in ("tiktoken", "hf")}


def test_lone_surrogates_encode_alike_in_both_engines(engines, small_ranks_file):
    """A str with lone surrogates: tiktoken encodes it (lone ones as U+FFFD, pairs joined), the HF engine
    raised TypeError('TextInputSequence must be str'), though both engines are meant to give the same ids."""
    ref = reference_tiktoken()
    texts = ["a\ud800b", "\udcff", "x \ud83d\ude00 y", "中\udc80文 <|endoftext|>", "\ud800\ud800"]
    # Hand-repaired: a lone surrogate is U+FFFD, a high+low pair is the character it encodes.
    repaired = ["a\ufffdb", "\ufffd", "x 😀 y", "中\ufffd文 <|endoftext|>", "\ufffd\ufffd"]
    want = [ref.encode_ordinary(t) for t in repaired]
    for name, enc in engines.items():
        assert [enc.encode(t) for t in texts] == want, name
        assert enc.encode_batch(texts) == want, name
        assert enc.encode_batch(["ok", *texts]) == [ref.encode_ordinary("ok"), *want], name
    with pytest.raises(TypeError):  # not a str: still an error, not repaired into something
        engines["hf"].encode_batch(["ok", None])


@pytest.mark.parametrize("bad", [151646, 151935, -1])
def test_decode_of_an_id_outside_the_vocabulary_is_refused_by_both_engines(engines, bad):
    """Qwen's model has 151,936 output rows for 151,646 ids: the HF engine decoded an id past the
    vocabulary to '' (text lost silently), tiktoken raised a bare KeyError or OverflowError."""
    for name, enc in engines.items():
        assert enc.decode([14990, 151645]) == "hello<|im_end|>", name  # 14990 = "hello" in Qwen's ranks
        with pytest.raises(ValueError, match=rf"token id {bad} is not in the vocabulary .*\(ids 0\.\.151645\)"):
            enc.decode([14990, bad])


def test_train_inputs_in_upper_case_are_read_as_prepare_reads_them(tmp_path):
    """`steel data prepare` tells formats by suffix in any case; the trainer skipped a directory's
    PART2.JSONL without a word (training on part of the corpus) and refused a named NOTES.TXT."""
    import gzip

    from steel.tokenizer.train import expand_inputs, iter_corpus

    d = tmp_path / "corpus"
    d.mkdir()
    (d / "a.jsonl").write_text('{"text": "one"}\n', encoding="utf-8")
    (d / "PART2.JSONL").write_text('{"text": "two"}\n{"text": "three"}\n', encoding="utf-8")
    (d / "NOTES.TXT").write_text("four\nfive\n", encoding="utf-8")
    with gzip.open(d / "z.Jsonl.Gz", "wt", encoding="utf-8") as f:
        f.write('{"text": "six"}\n')
    (d / "skip.parquet").write_bytes(b"")  # not a trainer input: still left out
    files = expand_inputs([d])
    assert [f.name for f in files] == ["NOTES.TXT", "PART2.JSONL", "a.jsonl", "z.Jsonl.Gz"]
    assert list(iter_corpus(files)) == ["four\nfive\n", "two", "three", "one", "six"]
    assert list(iter_corpus(files, limit_docs=2)) == ["four\nfive\n", "two"]  # the .TXT is one document
    assert expand_inputs([d / "NOTES.TXT"]) == [d / "NOTES.TXT"]


def _plant_another_tokenizers_files(d):
    """What a transformers-4 save or a hub download leaves beside tokenizer.json, and transformers reads."""
    d.mkdir(exist_ok=True)
    (d / "special_tokens_map.json").write_text('{"eos_token": "</s>", "bos_token": "<s>"}', encoding="utf-8")
    (d / "added_tokens.json").write_text('{"<extra>": 5}', encoding="utf-8")
    (d / "chat_template.json").write_text('{"chat_template": "STALE"}', encoding="utf-8")
    (d / "additional_chat_templates").mkdir(exist_ok=True)
    (d / "additional_chat_templates" / "tool_use.jinja").write_text("STALE", encoding="utf-8")
    (d / "notes.txt").write_text("mine", encoding="utf-8")


def _check_loads_as_built(d, n):
    from transformers import AutoTokenizer

    from steel.tokenizer.qwen import chatml_template

    tok = AutoTokenizer.from_pretrained(str(d))
    # Before: eos "</s>" and bos "<s>" were added as ids n and n+1, past the vocabulary, and the
    # chat template a dict with the stale "tool_use" one.
    assert (tok.eos_token, tok.eos_token_id, tok.bos_token, len(tok)) == ("<|endoftext|>", n - 3, None, n)
    assert tok.chat_template == chatml_template()
    assert load_encoder(d).eos_id == n - 3
    assert (d / "notes.txt").read_text(encoding="utf-8") == "mine"  # the user's own file is kept


def test_qwen_overwrite_drops_another_tokenizers_extra_files(tmp_path, small_ranks_file):
    from steel.cli import main

    out = tmp_path / "tok"
    _plant_another_tokenizers_files(out)
    assert main(["tokenizer", "qwen", str(out), "--ranks", str(small_ranks_file), "--overwrite"]) == 0
    _check_loads_as_built(out, 3003)
    # Steel's own build beside another tokenizer's special_tokens_map.json is not "this Qwen tokenizer".
    (out / "special_tokens_map.json").write_text('{"eos_token": "</s>"}', encoding="utf-8")
    assert main(["tokenizer", "qwen", str(out), "--ranks", str(small_ranks_file)]) == 2
    assert main(["tokenizer", "qwen", str(out), "--ranks", str(small_ranks_file), "--overwrite"]) == 0
    _check_loads_as_built(out, 3003)


def test_train_overwrite_drops_another_tokenizers_extra_files(tmp_path):
    from steel.cli import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello world, steel tokenizer 你好世界"}\n' * 50, encoding="utf-8")
    out = tmp_path / "tok"
    _plant_another_tokenizers_files(out)
    args = ["tokenizer", "train", "--input", str(corpus), "--vocab-size", "280", "--out", str(out), "--overwrite"]
    assert main(args) == 0
    _check_loads_as_built(out, 280)


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--vocab-size", str(2**31), "--vocab-size 2147483648: must be at most 16,777,216"),
        ("--min-frequency", str(10**20), "--min-frequency 100000000000000000000: must be >= 1"),
    ],
)
def test_train_refuses_absurd_sizes_before_the_trainer_crashes(tmp_path, capsys, flag, value, message):
    """--vocab-size 2**31 aborted the process inside tokenizers (a Rust allocation failure of 141 GB, no
    Python error), and --min-frequency 10**20 was an OverflowError traceback."""
    from steel.cli import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello world"}\n', encoding="utf-8")
    sizes = {"--vocab-size": "300", "--min-frequency": "2", flag: value}
    args = ["tokenizer", "train", "--input", str(corpus), "--out", str(tmp_path / "tok")]
    assert main([*args, *(x for kv in sizes.items() for x in kv)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "tok").exists() or not any((tmp_path / "tok").iterdir())
