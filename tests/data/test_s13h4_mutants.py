"""Tests written by a mutation audit of the data pipeline (session 13, H4): each one kills a deliberate
mutation of `steel.data` that the rest of the suite let pass, asserting against hand-computed values or a
small independent re-implementation."""

from __future__ import annotations

from steel.data.config import NormalizeConfig
from steel.data.filters import CharRatio
from steel.data.normalize import Normalizer, normalize_messages


def test_an_assistant_turn_that_normalization_empties_is_rejected_as_empty():
    # A zero-width space and a soft hyphen are control characters: the answer is empty once they go. A
    # conversation with an empty answer would teach the model to answer nothing.
    norm = Normalizer(NormalizeConfig())
    for empty in ("\u200b", "\u00ad\u200b", "\u200b\u3000"):
        msgs = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": empty}]
        assert normalize_messages(norm, msgs) == (None, "empty")
    # the same with the user turn emptied, and a kept conversation for contrast
    assert normalize_messages(norm, [{"role": "user", "content": "\u200b"},
                                     {"role": "assistant", "content": "好"}]) == (None, "empty")
    assert normalize_messages(norm, [{"role": "user", "content": "你好\u200b"},
                                     {"role": "assistant", "content": "好"}]) == (
        [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "好"}], None)


def test_char_ratio_on_a_text_with_no_counted_character_keeps_only_when_min_is_zero():
    # share = hits / non-whitespace characters is undefined for whitespace-only text: README's rule
    # "keep when min <= share" then keeps it only when min is 0 (as an empty text has share 0).
    for text in ("", " \n\t "):
        assert CharRatio(char_class="han", min=0.0, max=1.0).keep(text)
        assert not CharRatio(char_class="han", min=0.2, max=1.0).keep(text)
        assert not CharRatio(char_class="symbol", min=0.01, max=1.0).keep(text)


def test_near_dedup_finds_a_copy_that_shares_any_one_of_the_disjoint_bands():
    # README: LSH splits the signature into b bands of r rows; a later document sharing one whole band with
    # a kept one becomes a candidate, dropped when its estimated Jaccard is >= threshold. At the defaults
    # (0.8, 128 permutations) b, r = 9, 13 (datasketch's choice too): band k = rows [13k, 13k + 13).
    import numpy as np

    from steel.data.config import DedupConfig
    from steel.data.dedup import Deduper

    rng = np.random.default_rng(0)
    for k in range(9):
        d = Deduper(DedupConfig(exact=False, near=True))
        assert (d.bands, d.rows) == (9, 13)
        a = rng.integers(0, 2**32, 128, dtype=np.uint32)
        assert d.check(None, a) is None
        b = a.copy()
        for j in range(9):  # one differing row in every band but k: 120 of 128 rows equal (0.94 >= 0.8)
            if j != k:
                b[13 * j + 12] ^= 1
        assert d.check(None, b) == "dedup_near", f"band {k}"
        c = a.copy()
        c[[13 * j + 12 for j in range(9)]] ^= 1  # 119 rows equal but no whole band: never a candidate
        assert d.check(None, c) is None


def _md5_reference(data: bytes, span: int) -> str:
    """README: the MD5 of the first and last `span` bytes (the whole file when it is at most 2 * span bytes),
    then the file size in decimal."""
    import hashlib

    body = data if len(data) <= 2 * span else data[:span] + data[-span:]
    return hashlib.md5(body + str(len(data)).encode()).hexdigest()


def test_head_tail_md5_against_a_reference_at_every_size_boundary(tmp_path):
    from steel.data.chunks import MD5_SPAN, head_tail_md5

    assert MD5_SPAN == 1 << 20
    data = bytes(range(256)) * 64  # 16 KiB, no two 8-byte spans alike at a shifted offset
    for size in (0, 1, 7, 8, 9, 15, 16, 17, 18, 33, 1000):
        p = tmp_path / f"f{size}"
        p.write_bytes(data[:size])
        assert head_tail_md5(p, span=8) == _md5_reference(data[:size], 8), size
    # the real span: a 1.5 MiB chunk is hashed whole, a 2 MiB + 3 byte one by its two 1 MiB ends
    big = (bytes(range(251)) * ((3 << 20) // 251 + 1))
    for size in (3 << 19, (2 << 20), (2 << 20) + 3):
        p = tmp_path / f"big{size}"
        p.write_bytes(big[:size])
        assert head_tail_md5(p) == _md5_reference(big[:size], MD5_SPAN), size


def test_a_vocabulary_just_past_uint16_is_stored_as_uint32_without_wrapping(tmp_path):
    import numpy as np

    from steel.data.chunks import dtype_for_vocab, read_chunk, write_chunk

    assert dtype_for_vocab(1 << 16) == np.dtype("<u2")  # ids 0..65535 fit
    assert dtype_for_vocab((1 << 16) + 1) == np.dtype("<u4")  # id 65536 does not
    ids = [0, 65535, 65536, 1]
    write_chunk(tmp_path / "c.bin", ids, (1 << 16) + 1, "fp")
    header, toks = read_chunk(tmp_path / "c.bin")
    assert header.num_tokens == 4 and np.asarray(toks).tolist() == ids
    assert (tmp_path / "c.bin").stat().st_size == 128 + 4 * 4


def test_near_dedup_drops_at_exactly_the_threshold():
    # README: "dropped only if its estimated Jaccard is >= threshold": 12 of 16 equal rows is 0.75 exactly.
    import numpy as np

    from steel.data.config import DedupConfig
    from steel.data.dedup import Deduper

    a = np.arange(16, dtype=np.uint32) * 7 + 1
    for equal, want in ((12, "dedup_near"), (11, None)):
        d = Deduper(DedupConfig(exact=False, near=True, threshold=0.75, num_perm=16))
        assert d.rows <= 11  # the first band lies inside the equal rows
        assert d.check(None, a) is None
        b = a.copy()
        b[equal:] += 1000  # rows [0, equal) equal, the rest not
        assert d.check(None, b) == want, equal


def test_a_band_bucket_holds_every_kept_document_not_only_its_first():
    # A and X are kept; B shares their band 0 only (not a near duplicate: kept); C is a near copy of B that
    # shares with B band 0 alone as a whole band. C must be found through the bucket of band 0, which A and X
    # entered before B.
    import numpy as np

    from steel.data.config import DedupConfig
    from steel.data.dedup import Deduper

    rng = np.random.default_rng(1)
    d = Deduper(DedupConfig(exact=False, near=True))
    assert (d.bands, d.rows) == (9, 13)
    a = rng.integers(0, 2**32, 128, dtype=np.uint32)
    b = rng.integers(0, 2**32, 128, dtype=np.uint32)
    b[:13] = a[:13]  # 13 / 128 equal rows with A
    c = b.copy()
    c[[13 * j + 12 for j in range(1, 9)]] ^= 1  # 120 / 128 equal rows with B, whole band 0 only
    x = rng.integers(0, 2**32, 128, dtype=np.uint32)
    x[:13] = a[:13]
    for kept in (a, x, b):
        assert d.check(None, kept) is None
    assert d.check(None, c) == "dedup_near"


def test_a_document_of_exactly_max_doc_chars_is_kept_one_more_is_too_large(tmp_path, enc):
    import json

    from steel.config import from_dict
    from steel.data.config import DataConfig
    from steel.data.prepare import prepare

    docs = ["一二三四五六七八九十", "一二三四五六七八九十百", "短文"]  # 10, 11, 2 characters
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs),
                                      encoding="utf-8")
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": "unused", "workers": 0, "max_doc_chars": 10,
                                 "chunk_tokens": 64, "sources": [{"name": "a", "path": ["a.jsonl"]}]})
    m = prepare(cfg, tmp_path / "out", encoder=enc, quiet=True)
    a = m["sources"]["a"]
    assert (a["read"], a["kept"], a["rejected"]) == (3, 2, {"too_large": 1})
    assert a["tokens"] == len(enc.encode(docs[0])) + len(enc.encode(docs[2])) + 2


def test_alpaca_user_turn_is_instruction_newline_input_in_the_rendered_chatml():
    # README (chat layouts): user turn = instruction + "\n" + input; ChatML as Qwen's template.
    from steel.data.chat import extract_messages, render_chatml

    rec = {"instruction": "翻译成英文", "input": "你好", "output": "Hello", "system": "你是助手"}
    assert render_chatml(extract_messages(rec, "alpaca")) == (
        "<|im_start|>system\n你是助手<|im_end|>\n"
        "<|im_start|>user\n翻译成英文\n你好<|im_end|>\n"
        "<|im_start|>assistant\nHello<|im_end|>\n")
    # a blank input adds nothing
    assert extract_messages(rec | {"input": " ", "system": ""}, "alpaca") == [
        {"role": "user", "content": "翻译成英文"}, {"role": "assistant", "content": "Hello"}]


def test_chat_filters_and_dedup_see_the_turns_without_the_system_prompt(tmp_path, enc):
    # README: chat records are filtered and deduplicated on their contents joined by newlines, without their
    # system turns. Under a long shared `system:` prompt two distinct short Q&A pairs stay distinct, and a
    # length filter judges the Q&A alone.
    import json

    from steel.config import from_dict
    from steel.data.chat import conversation_text
    from steel.data.config import DataConfig
    from steel.data.prepare import prepare

    assert conversation_text([{"role": "system", "content": "S"}, {"role": "user", "content": "问"},
                              {"role": "assistant", "content": "答"}]) == "问\n答"
    recs = [{"instruction": "一加一等于几？", "output": "二。"}, {"instruction": "天是什么颜色？", "output": "蓝色。"},
            {"instruction": "嗨", "output": "好"}]  # "嗨\n好": 3 characters < min_chars 5
    (tmp_path / "c.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    system = "".join(chr(0x4E00 + 7 * k) for k in range(300))  # 300 distinct characters: ~296 distinct 5-grams
    cfg = from_dict(DataConfig, {
        "root": str(tmp_path), "tokenizer": "unused", "workers": 0, "chunk_tokens": 512,
        "filters": [{"name": "length", "min_chars": 5}],
        "sources": [{"name": "c", "path": ["c.json"], "kind": "chat", "chat_layout": "alpaca", "system": system}]})
    c = prepare(cfg, tmp_path / "out", encoder=enc, quiet=True)["sources"]["c"]
    assert (c["read"], c["kept"]) == (3, 2)
    assert c["filtered"] == {"length": 1, "dedup_exact": 0, "dedup_near": 0}


def test_a_chunk_longer_than_its_header_says_is_refused(tmp_path):
    # 2 tokens of uint16 = 128 + 4 bytes; a file with bytes after them (two writers, a copy appended to) is
    # not the chunk its header describes.
    import pytest

    from steel.data.chunks import ChunkFormatError, read_chunk, write_chunk

    p = write_chunk(tmp_path / "c.bin", [5, 6], 100, "fp")
    assert read_chunk(p)[0].num_tokens == 2
    for extra in (b"\0", b"\7\0"):
        q = tmp_path / f"x{len(extra)}.bin"
        q.write_bytes(p.read_bytes() + extra)
        with pytest.raises(ChunkFormatError, match=f"header says 2 tokens \\(132 bytes\\) but the file has {132 + len(extra)}"):
            read_chunk(q)
