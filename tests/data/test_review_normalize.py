"""Normalization: the output is in the configured normal form, and line breaks are not lost."""

from __future__ import annotations

import unicodedata

import pytest

from steel.data.config import NormalizeConfig
from steel.data.dedup import exact_hash, fold
from steel.data.normalize import Normalizer


@pytest.mark.parametrize("form", ["NFC", "NFKC"])
@pytest.mark.parametrize("raw", ["Cafe\u00ad\u0301", "Cafe\u200b\u0301", "Cafe\x07\u0301", "A\ufeff\u030angstr\u00f6m"])
def test_output_is_in_the_configured_form_after_removing_invisible_characters(form, raw):
    # removing the soft hyphen / zero-width space / control char puts e and the combining acute side by
    # side: normalizing before the removal left "e\u0301", not the composed "é" of the same word elsewhere
    out = Normalizer(NormalizeConfig(unicode=form))(raw)
    assert unicodedata.is_normalized(form, out), ascii(out)


def test_words_split_by_a_soft_hyphen_are_exact_duplicates_of_the_plain_word():
    n = Normalizer(NormalizeConfig())
    assert exact_hash(fold(n("Caf\u00e9 au lait"))) == exact_hash(fold(n("Cafe\u00ad\u0301 au lait")))


@pytest.mark.parametrize("sep", ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e"])
def test_form_feed_and_other_line_separators_become_newlines(sep):
    # a PDF/OCR page break ("\f") was deleted as a control character, gluing the words on either side
    # ("page one.Page two"); Python's str.splitlines and Unicode (bidi class B) treat these as line breaks
    n = Normalizer(NormalizeConfig())
    assert n(f"end of page one.{sep}Page two") == "end of page one.\nPage two"
    assert n(f"第一页{sep}{sep}{sep}第二页") == "第一页\n\n第二页"


def test_ideographic_space_indent_of_the_first_paragraph_is_kept():
    # U+3000 is kept as the Chinese paragraph indent, but str.strip() removed it from the first paragraph
    # only: "\u3000\u3000第一段\n\u3000\u3000第二段" came out with one indented paragraph of two
    n = Normalizer(NormalizeConfig())
    assert n(" \n\u3000\u3000第一段。\n\u3000\u3000第二段。\n ") == "\u3000\u3000第一段。\n\u3000\u3000第二段。"


def test_a_turn_left_with_only_whitespace_after_normalization_is_empty():
    from steel.data.normalize import normalize_messages

    n = Normalizer(NormalizeConfig())
    msgs = [{"role": "user", "content": "\u200b\u3000"}, {"role": "assistant", "content": "a"}]
    assert normalize_messages(n, msgs) == (None, "empty")
    sys_blank = [{"role": "system", "content": "\u200b\u3000"}, {"role": "user", "content": "q"},
                 {"role": "assistant", "content": "a"}]
    assert normalize_messages(n, sys_blank) == ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], None)


def test_ideographic_spaces_ending_a_line_or_the_text_are_stripped():
    # Keeping the first paragraph's indent also kept U+3000 at the end of the text (str.strip() took it),
    # and a line ending in U+3000 kept it while one ending in a space did not.
    n = Normalizer(NormalizeConfig())
    assert n("\u3000\u3000第一段。\u3000\n\u3000\u3000第二段。\u3000\u3000") == "\u3000\u3000第一段。\n\u3000\u3000第二段。"
    assert n("第一段。\n\u3000\u3000") == "第一段。"
