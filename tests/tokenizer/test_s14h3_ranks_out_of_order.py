"""A rank file whose lines are not in rank order is accepted (read_ranks checks the set 0..n-1, not the
order), so `build_fast_tokenizer` must order the merges by rank itself: Qwen's file happens to be sorted,
which is why dropping that sort went unnoticed. Reference: tiktoken over the same ranks."""

from __future__ import annotations

import random

import tiktoken

from steel.tokenizer.qwen import QWEN_PATTERN, build_fast_tokenizer, read_ranks


def test_shuffled_rank_file_gives_tiktoken_ids(tmp_path, small_ranks_file, tricky_strings):
    lines = small_ranks_file.read_bytes().splitlines(keepends=True)
    random.Random(0).shuffle(lines)
    shuffled = tmp_path / "shuffled.tiktoken"
    shuffled.write_bytes(b"".join(lines))
    ranks = read_ranks(shuffled)
    assert ranks == read_ranks(small_ranks_file)
    ours = build_fast_tokenizer(ranks)
    ours.encode_special_tokens = True  # ordinary text, as steel.tokenizer.engine reads it
    ref = tiktoken.Encoding("ref", pat_str=QWEN_PATTERN, mergeable_ranks=ranks, special_tokens={})
    for text in tricky_strings + ["the quick brown fox jumps over the lazy dog", "中文分词测试，合并顺序"]:
        assert ours.encode(text, add_special_tokens=False).ids == ref.encode_ordinary(text), text
