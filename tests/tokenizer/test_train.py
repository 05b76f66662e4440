"""`steel tokenizer train`: a small byte-level BPE on real text, Qwen-shaped, better than bytes."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from steel.cli import UserError, main
from steel.tokenizer import load_tokenizer
from steel.tokenizer.engine import load_encoder, read_tokenizer_json
from steel.tokenizer.qwen import chatml_template
from steel.tokenizer.train import expand_inputs, iter_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, real_texts):
    """Training inputs in three formats (jsonl.gz, jsonl, txt) and held-out documents per kind."""
    d = tmp_path_factory.mktemp("corpus")
    zh, en, code = real_texts["zh"], real_texts["en"], real_texts["code"]
    with gzip.open(d / "zh.jsonl.gz", "wt", encoding="utf-8") as f:
        for t in zh[::2]:
            f.write(json.dumps({"text": t[:4000], "meta": 1}, ensure_ascii=False) + "\n")
    with open(d / "en.jsonl", "w", encoding="utf-8") as f:
        for t in en[::2]:
            f.write(json.dumps({"text": t[:4000]}) + "\n")
    (d / "code.txt").write_text("".join(code[::2]), encoding="utf-8")
    held_out = {"zh": zh[1::2][:40], "en": en[1::2][:40], "code": code[1::2]}
    return d, held_out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    d, _ = corpus
    out = tmp_path_factory.mktemp("trained")
    assert main(["tokenizer", "train", "--input", str(d), "--vocab-size", "1000", "--out", str(out)]) == 0
    return out


def test_specials_last_and_qwen_shape(trained, qwen_tokenizer_dir):
    tok = load_tokenizer(trained)
    assert len(tok) == 1000
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [997, 998, 999]
    assert tok.eos_token_id == 997 and tok.pad_token_id == 997
    ours, qwen = read_tokenizer_json(trained), read_tokenizer_json(qwen_tokenizer_dir)
    for key in ("pre_tokenizer", "normalizer", "decoder"):
        assert ours[key] == qwen[key], key
    assert ours["model"]["ignore_merges"] is True
    assert json.loads((trained / "tokenizer_config.json").read_text())["chat_template"] == chatml_template()
    msgs = [{"role": "user", "content": "你好"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == "<|im_start|>user\n你好<|im_end|>\n"
    enc = load_encoder(trained)
    assert enc.engine == "hf" and enc.eos_id == 997 and enc.vocab_size == 1000
    assert enc.encode_chat(msgs) == tok.apply_chat_template(msgs, tokenize=True, return_dict=False)


def test_round_trip_and_compression(trained, corpus, tricky_strings):
    _, held_out = corpus
    enc = load_encoder(trained)
    for kind, texts in held_out.items():
        ids = enc.encode_batch(texts)
        for text, t in zip(texts, ids):
            assert enc.decode(t) == text
            assert max(t) < 997  # ordinary text never yields a special id
        n_bytes = sum(len(t.encode()) for t in texts)
        n_tokens = sum(map(len, ids))
        # Hand-checked floor: a 1,000-id BPE merges at least the commonest pairs, so each token covers
        # well over one byte on held-out text (measured 1.97-2.29 bytes/token here); 1.5 leaves room for
        # other real text yet fails for a byte-level fallback (1.0).
        assert n_bytes / n_tokens > 1.5, kind
    for text in tricky_strings:
        assert enc.decode(enc.encode(text)) == text


def test_deterministic(tmp_path, corpus, trained):
    d, _ = corpus
    assert (
        main(["tokenizer", "train", "--input", str(d), "--vocab-size", "1000", "--out", str(tmp_path)]) == 0
    )
    assert (tmp_path / "tokenizer.json").read_bytes() == (trained / "tokenizer.json").read_bytes()


def test_non_empty_out_is_refused_unless_overwrite(tmp_path, corpus, capsys):
    """Data prepared with the tokenizer in --out would decode wrongly after a silent retrain there."""
    d, _ = corpus
    out = tmp_path / "tok"
    out.mkdir()
    (out / "tokenizer.json").write_text("{}", encoding="utf-8")
    args = ["tokenizer", "train", "--input", str(d), "--vocab-size", "300", "--limit-docs", "20", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "tokenizer.json" in err and "--overwrite" in err
    assert (out / "tokenizer.json").read_text(encoding="utf-8") == "{}"
    assert main(args + ["--overwrite"]) == 0
    assert len(load_tokenizer(out)) == 300
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert main(args[:-1] + [str(tmp_path / "file"), "--overwrite"]) == 2


def test_readers(tmp_path, corpus):
    d, _ = corpus
    files = expand_inputs([d])
    assert [f.name for f in files] == ["code.txt", "en.jsonl", "zh.jsonl.gz"]
    docs = list(iter_corpus(files[1:]))
    assert docs[0] == json.loads((d / "en.jsonl").read_text(encoding="utf-8").splitlines()[0])["text"]
    assert len(list(iter_corpus(files, limit_docs=7))) == 7
    # A .txt file comes back whole, in pieces split at line boundaries.
    assert "".join(iter_corpus(files[:1])) == (d / "code.txt").read_text(encoding="utf-8")

    # A UTF-8 BOM (Windows editors) is not part of the first record, as in `steel data prepare`.
    bom = tmp_path / "bom.jsonl.gz"
    bom.write_bytes(gzip.compress(b"\xef\xbb\xbf" + '{"text": "第一"}\n{"text": "二"}\n'.encode()))
    assert list(iter_corpus([bom])) == ["第一", "二"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": "broken\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: malformed JSON"):
        list(iter_corpus([bad]))
    bad.write_text('{"text": "ok"}\n\n{"body": "x"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:3: no 'text' field"):
        list(iter_corpus([bad]))
    bad.write_bytes(b'{"text": "\xff\xfe"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:1: invalid UTF-8"):
        list(iter_corpus([bad]))
    # The error names the line (README: file:line), also for a line after a malformed-free start,
    # and the first bad line wins over a later one.
    bad.write_bytes(b'{"text": "ok"}\n{"text": broken\n' + b'{"text": "x"}\n' * 10 + b'\xff\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: malformed JSON"):
        list(iter_corpus([bad]))
    txt = tmp_path / "bad.txt"
    txt.write_bytes(b"fine\nstill fine\nnot \xc3 utf8\n")
    with pytest.raises(UserError, match=r"bad.txt:3: invalid UTF-8"):
        list(iter_corpus([txt]))
    # Corrupt compressed files are one error line, not a zstd/zlib traceback.
    zst = tmp_path / "corrupt.jsonl.zst"
    zst.write_bytes(b"not zstd data")
    with pytest.raises(UserError, match=r"corrupt.jsonl.zst: read error"):
        list(iter_corpus([zst]))
    gz = bytearray(gzip.compress(b"".join(b'{"text": "doc %d"}\n' % i for i in range(20000))))
    gz[200:400] = bytes(b ^ 0x55 for b in gz[200:400])
    (tmp_path / "corrupt.jsonl.gz").write_bytes(bytes(gz))
    with pytest.raises(UserError, match=r"corrupt.jsonl.gz: read error"):
        list(iter_corpus([tmp_path / "corrupt.jsonl.gz"]))
    with pytest.raises(UserError, match="unsupported file type"):
        expand_inputs([Path(os.__file__)])


def test_cli_errors(tmp_path, corpus, capsys):
    d, _ = corpus
    assert main(["tokenizer", "train", "--input", str(d), "--vocab-size", "100", "--out", str(tmp_path)]) == 2
    assert "--vocab-size 100" in capsys.readouterr().err
    assert (
        main(
            [
                "tokenizer",
                "train",
                "--input",
                str(tmp_path / "none"),
                "--vocab-size",
                "500",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err


def test_truncated_compressed_input_is_an_error(tmp_path):
    """A cut .zst/.gz file fails naming the file, instead of training on the part before the cut.

    (zstandard's stream_reader returns a truncated frame's data with no error; `steel data prepare`
    already counts such a file as `unreadable_file`, and the trainer now reads with the same code.)
    """
    import zstandard

    data = b"".join(b'{"text": "doc %d"}\n' % (i * 7919 % 100003) for i in range(30000))
    zst = zstandard.ZstdCompressor().compress(data)
    (tmp_path / "cut.jsonl.zst").write_bytes(zst[: len(zst) // 2])
    with pytest.raises(UserError, match=r"cut.jsonl.zst: read error after line \d+ .*truncated"):
        list(iter_corpus([tmp_path / "cut.jsonl.zst"]))
    gz = gzip.compress(data)
    (tmp_path / "cut.jsonl.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(UserError, match=r"cut.jsonl.gz: read error after line \d+"):
        list(iter_corpus([tmp_path / "cut.jsonl.gz"]))
    # An intact multi-frame zstd file (zstd -c a >> b) reads whole.
    two = tmp_path / "two.jsonl.zst"
    frames = [zstandard.ZstdCompressor().compress(part) for part in (data[:19], data[19:])]
    two.write_bytes(b"".join(frames))
    assert len(list(iter_corpus([two]))) == 30000
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", "--input", str(tmp_path / "cut.jsonl.zst"), "--vocab-size", "300",
                 "--out", str(out)]) == 2
    assert not (out / "tokenizer.json").exists()


def test_json_surrogate_escape_is_an_error_naming_the_line(tmp_path):
    r"""A JSON "\ud800" escape decodes to a lone surrogate, which is no Unicode text: HF's trainer died on it
    with a bare UnicodeEncodeError traceback (`steel data prepare` rejects such documents)."""
    bad = tmp_path / "sur.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": "bad \\ud800 here"}\n')
    with pytest.raises(UserError, match=r"sur.jsonl:2: .*surrogate"):
        list(iter_corpus([bad]))
    # A well-formed escaped pair is one character, and fine.
    bad.write_text('{"text": "\\ud83d\\ude00"}\n')
    assert list(iter_corpus([bad])) == ["\U0001f600"]
    assert main(["tokenizer", "train", "--input", str(tmp_path / "sur.jsonl"), "--vocab-size", "300",
                 "--out", str(tmp_path / "tok")]) == 0


def test_json_lines_with_a_huge_integer_or_deep_nesting(tmp_path):
    """A record with an integer of over 4,300 digits (Python's int() cap: json.loads raised a ValueError
    that is no JSONDecodeError) is read as prepare reads it; nesting past the parser's recursion limit is
    an error naming the line (both were tracebacks)."""
    f = tmp_path / "big.jsonl"
    f.write_text('{"n": ' + "9" * 5000 + ', "text": "after the number"}\n{"text": "next"}\n')
    assert list(iter_corpus([f])) == ["after the number", "next"]
    f.write_text('{"text": "ok"}\n{"text": "x", "deep": ' + "[" * 100000 + "]" * 100000 + "}\n")
    with pytest.raises(UserError, match=r"big.jsonl:2: malformed JSON \(nested too deeply"):
        list(iter_corpus([f]))


def test_txt_bom_is_not_text(tmp_path):
    """A UTF-8 BOM opening a .txt file is no part of the document, as in `steel data prepare` (utf-8-sig)."""
    txt = tmp_path / "bom.txt"
    txt.write_bytes(b"\xef\xbb\xbf" + "第一行\nline two\n".encode())
    assert list(iter_corpus([txt])) == ["第一行\nline two\n"]


def test_a_file_named_twice_is_read_once(tmp_path, monkeypatch):
    """Another spelling of the same file (relative/absolute, `..`, inside a directory also named) was read
    again, silently doubling its counts in the training mix; `steel data prepare` reads it once."""
    (tmp_path / "sub").mkdir()
    f = tmp_path / "a.jsonl"
    f.write_text('{"text": "once"}\n')
    monkeypatch.chdir(tmp_path)
    files = expand_inputs([tmp_path, "a.jsonl", tmp_path / "sub" / ".." / "a.jsonl"])
    assert list(iter_corpus(files)) == ["once"]


def test_overwrite_of_a_qwen_directory_drops_its_rank_file(tmp_path, small_ranks_file, caplog):
    """Retraining over a Qwen build kept its qwen.tiktoken: a rank file of another vocabulary, so every
    `load_encoder` of the new tokenizer warned and `engine="tiktoken"` named the stale file as the reason."""
    from steel.tokenizer.qwen import build_qwen_tokenizer

    out = build_qwen_tokenizer(tmp_path / "tok", ranks_path=small_ranks_file)
    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps({"text": f"doc {i} 文本"}) + "\n" for i in range(50)))
    assert main(["tokenizer", "train", "--input", str(data), "--vocab-size", "300", "--out", str(out),
                 "--overwrite"]) == 0
    assert sorted(p.name for p in out.glob("*.tiktoken")) == []
    with caplog.at_level("WARNING", logger="steel"):
        enc = load_encoder(out)
    assert enc.engine == "hf" and enc.vocab_size == len(load_tokenizer(out)) and caplog.records == []


def test_limit_docs_counts_a_txt_file_as_one_document(tmp_path, monkeypatch):
    """A .txt file is one document (README), read in pieces; --limit-docs counted the pieces, so a big file
    was cut after its first ~1 MB piece and the next file skipped."""
    from steel.tokenizer import train

    monkeypatch.setattr(train, "TXT_PIECE", 8)  # pieces of >= 8 chars: several per file
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("first line\nsecond line\nthird line\n")
    b.write_text("other file\nmore of it\n")
    assert len(list(iter_corpus([a]))) == 3  # the file does come in pieces
    assert "".join(iter_corpus([a, b], limit_docs=2)) == a.read_text() + b.read_text()
    assert "".join(iter_corpus([a, b], limit_docs=1)) == a.read_text()


def test_no_documents_is_an_error(tmp_path, capsys):
    """Inputs holding no document (empty files) wrote a bytes-only tokenizer (259 ids) with a note blaming
    --min-frequency; nothing was learned, so nothing is written."""
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"\n\n")
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", "--input", str(tmp_path / "empty.jsonl"), str(tmp_path / "blank.jsonl"),
                 "--vocab-size", "300", "--out", str(out)]) == 2
    assert "no documents" in capsys.readouterr().err
    assert not out.exists()
