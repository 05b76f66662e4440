"""Normalizers and filters on hand-made documents, and filter config errors naming the field."""

from __future__ import annotations

import pytest

from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig, NormalizeConfig
from steel.data.filters import FILTERS, build_filters
from steel.data.normalize import Normalizer


def test_normalize_unicode_control_whitespace():
    n = Normalizer(NormalizeConfig())
    # NFC composes e + combining acute; control chars, zero-width space and BOM go; \r\n -> \n;
    # trailing spaces and runs of blank lines are cleaned; full-width punctuation and U+3000 stay.
    raw = "\ufeffCafe\u0301\x07 a\u200bb  \r\nline2\u00a0x\t \n\n\n\n\u3000\u3000第二段，完。  "
    assert n(raw) == "Café ab\nline2 x\n\n\u3000\u3000第二段，完。"
    assert Normalizer(NormalizeConfig(unicode="NFKC"))("１２，") == "12,"  # why NFC is the default
    off = Normalizer(NormalizeConfig(unicode="none", control_chars=False, whitespace=False))
    assert off(raw) == raw


def test_t2s_opencc():
    n = Normalizer(NormalizeConfig(t2s=True))
    assert n("電腦與軟體") == "电脑与软体"
    assert n("简体不变") == "简体不变"


def flt(spec):
    (f,) = build_filters([spec], setup=True)
    return f


def test_length():
    f = flt({"name": "length", "min_chars": 3, "max_chars": 5})
    assert [f.keep(t) for t in ["ab", "abc", "abcde", "abcdef"]] == [False, True, True, False]


def test_char_ratio_classes():
    digits = flt({"name": "char_ratio", "char_class": "digit", "max": 0.5})
    assert digits.keep("ab12") and not digits.keep("a123")  # 2/4 kept, 3/4 dropped
    cjk = flt({"name": "char_ratio", "char_class": "cjk", "min": 0.5})
    assert cjk.keep("中文 ab") and not cjk.keep("中 abc")  # whitespace not counted: 2/4 vs 1/4
    sym = flt({"name": "char_ratio", "char_class": "symbol", "max": 0.25})
    assert sym.keep("abc!") and not sym.keep("ab!!")
    latin = flt({"name": "char_ratio", "char_class": "latin", "min": 0.9})
    assert latin.keep("Ébène") and not latin.keep("Ébène1")
    ws = flt({"name": "char_ratio", "char_class": "whitespace", "max": 0.3})
    assert ws.keep("ab c") and not ws.keep("a  b")


def test_class_tables_match_the_regex_definitions():
    import re

    from steel.data.filters import _CLASS_RE, _codepoints, _count

    text = "Abc É 中文 𠀀𪚥 かなカナ 한글 123 ٣ ！，。 $%& \t\n\u3000 _ ß Ω 😀 \x00"
    cps = _codepoints(text)
    for name, regex in _CLASS_RE.items():
        assert _count(name, cps) == len(regex.findall(text)), name
    assert _count("alpha", cps) == sum(map(str.isalpha, text))
    assert _count("han", cps) == len(re.findall("[中文𠀀𪚥]", text))  # astral Han (ext. B) included


def test_script_share():
    zh = flt({"name": "script_share", "script": "han", "min_share": 0.6})
    # letters only: 3 Han of 5 letters = 0.6 kept; digits/punctuation do not count
    assert zh.keep("中文字 ab 123!!!") and not zh.keep("中文 abc")
    assert not zh.keep("123 !!!")  # no letters at all


def test_max_line_length():
    f = flt({"name": "max_line_length", "max_chars": 5})
    assert f.keep("12345\n123") and not f.keep("123\n123456")


def test_repeated_lines():
    f = flt({"name": "repeated_lines", "max_line_frac": 0.3, "max_char_frac": 1.0})
    assert f.keep("a\nb\nc\na")  # 1 duplicate of 4 lines = 0.25
    assert not f.keep("a\nb\na\na")  # 2 of 4 = 0.5
    g = flt({"name": "repeated_lines", "max_line_frac": 1.0, "max_char_frac": 0.2})
    assert not g.keep("long line here\nx\nlong line here")  # 14 of 29 chars duplicated


def test_repeated_ngrams():
    f = flt({"name": "repeated_ngrams", "n": 4, "max_frac": 0.5})
    assert f.keep("abcdefghij")  # no 4-gram repeats
    # "abcd" twice in 12 chars: 8 covered chars = 0.67 > 0.5
    assert not f.keep("abcdXYabcdZW")
    # covered = 8 of 20 = 0.4 kept
    assert f.keep("abcdXYZ1234567abcd89")
    spam = "买买买点这里" * 20
    assert not flt({"name": "repeated_ngrams", "n": 10, "max_frac": 0.3}).keep(spam)


def test_blocklist(tmp_path):
    (tmp_path / "words.txt").write_text("赌场\n\nBad Word\n", encoding="utf-8")
    f = build_filters([{"name": "blocklist", "file": "words.txt", "words": ["spam"]}], root=tmp_path, setup=True)[0]
    assert f.keep("clean text") and not f.keep("澳门赌场") and not f.keep("a BAD WORD") and not f.keep("SPAM")
    g = flt({"name": "blocklist", "words": ["x"], "max_hits": 2})
    assert g.keep("x x") and not g.keep("x x x")


def test_every_registered_filter_is_tested():
    assert set(FILTERS) == {"length", "char_ratio", "script_share", "max_line_length", "repeated_lines",
                            "repeated_ngrams", "blocklist"}


def test_applies_to_sources_and_kinds():
    f = flt({"name": "length", "sources": ["a"], "kinds": ["text"]})
    assert f.applies("a", "text") and not f.applies("b", "text") and not f.applies("a", "chat")


@pytest.mark.parametrize("filters, message", [
    ([{"name": "nope"}], r"filters\[0\]\.name: unknown filter 'nope'"),
    ([{"name": "length"}, {"name": "length", "min_chars": "ten"}], r"filters\[1\]\.min_chars: expected an integer"),
    ([{"name": "length", "min_chars": 5, "max_chars": 2}], r"filters\[0\]\.max_chars: must be >= min_chars \(5\), got 2"),
    ([{"name": "length", "colour": 1}], r"filters\[0\]\.colour: unknown field"),
    ([{"name": "length"}, {"name": "length"}], r"filters\[1\]\.label: 'length' is already used"),
    ([{"name": "length", "sources": ["zz"]}], r"filters\[0\]\.sources: no source named 'zz'"),
    ([{"min_chars": 1}], r"filters\[0\]: expected a mapping with `name`"),
    # dedup counts under these keys in the same `filtered` table: a filter there would merge with them
    ([{"name": "length", "label": "dedup_exact"}], r"filters\[0\]\.label: 'dedup_exact' is already used"),
    ([{"name": "length", "label": "dedup_near"}], r"filters\[0\]\.label: 'dedup_near' is already used"),
    # an empty word compiled to the empty pattern, which matches every text: every document was dropped
    ([{"name": "blocklist", "words": [""]}], r"filters\[0\]\.words: give `words` \(non-empty\)"),
])
def test_filter_config_errors(filters, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(DataConfig, {"sources": [{"name": "s", "path": ["x"]}], "filters": filters})


def test_blocklist_file_without_words_is_refused(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"filters\[0\]\.file: .*empty.txt has no word"):
        build_filters([{"name": "blocklist", "file": "empty.txt"}], root=tmp_path, setup=True)
    # words given beside an empty file: those words are the list
    f = build_filters([{"name": "blocklist", "file": "empty.txt", "words": ["spam"]}], root=tmp_path, setup=True)[0]
    assert f.keep("clean") and not f.keep("spam")


def test_blocklist_missing_file_names_field(tmp_path):
    with pytest.raises(ConfigError, match=r"filters\[0\]\.file: cannot read blocklist"):
        build_filters([{"name": "blocklist", "file": "missing.txt"}], root=tmp_path, setup=True)
