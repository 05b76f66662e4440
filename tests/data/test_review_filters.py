"""Filter measures checked against counts made by hand."""

from __future__ import annotations

from steel.data.filters import build_filters


def flt(spec):
    (f,) = build_filters([spec], setup=True)
    return f


def test_script_share_counts_only_letters_of_the_script():
    # "3×4÷2=6 中文": the letters are 中 and 文; × and ÷ (U+00D7, U+00F7: math signs inside the Latin-1
    # block) are not Latin letters, so the Latin share of the letters is 0/2, not 2/2
    latin = flt({"name": "script_share", "script": "latin", "min_share": 0.5})
    assert not latin.keep("3×4÷2=6 中文")
    # katakana middle dot (U+30FB, punctuation) and the kana voicing marks (U+309B/C) lie in the kana
    # block but are not letters: 0 CJK letters of 4 letters, not 6/4 (a share above 1)
    cjk = flt({"name": "script_share", "script": "cjk", "min_share": 0.5})
    assert not cjk.keep("・・゛゜abcd")
    assert cjk.keep("ア・イ ab")  # 2 kana letters of 4 letters = 0.5


def test_latin_class_excludes_multiplication_and_division_signs():
    latin = flt({"name": "char_ratio", "char_class": "latin", "max": 0.0})
    assert latin.keep("3×4÷2")  # no Latin letter: share 0
    assert not latin.keep("3×x")  # x is one of 3 non-whitespace characters


def test_symbol_class_is_punctuation_and_symbols_not_combining_marks():
    import unicodedata

    from steel.data.filters import _codepoints, _count

    # Devanagari vowel signs and virama, Arabic harakat are combining marks (Mn/Mc) of words, not
    # punctuation: a plain Hindi sentence counted 11 "symbols" of 25 characters, vocalized Arabic 8 of 15,
    # so `char_ratio symbol max: 0.5` dropped ordinary prose
    for text in ["हिन्दी भाषा भारत की राजभाषा है", "اَلْعَرَبِيَّةُ", "ภาษาไทยเป็นภาษาราชการ"]:
        assert _count("symbol", _codepoints(text)) == 0, text
    text = "中文，。！“引号” $5%&_ a-b (c) 😀 ① \u0301"
    want = sum(unicodedata.category(c)[0] in "PS" for c in text)  # P*: punctuation, S*: symbols
    assert want == 13  # ，。！“” $ % & _ - ( ) 😀: by hand
    assert _count("symbol", _codepoints(text)) == want
    sym = flt({"name": "char_ratio", "char_class": "symbol", "max": 0.5})
    assert sym.keep("اَلْعَرَبِيَّةُ") and not sym.keep("!!!a")


def test_fullwidth_digits_and_latin_letters_count_in_their_classes():
    # NFC (the default) keeps Chinese text's full-width forms: "２０２４年" has 4 digits of 5 characters
    digits = flt({"name": "char_ratio", "char_class": "digit", "max": 0.5})
    assert digits.keep("2024年是一年") and not digits.keep("２０２４年")
    latin = flt({"name": "script_share", "script": "latin", "min_share": 0.5})
    assert latin.keep("ＡＢＣ中") and not latin.keep("ＡＢ中文字")  # 3/4 kept, 2/5 dropped


def test_stray_combining_marks_still_count_as_symbols():
    from steel.data.filters import _codepoints, _symbol_count

    # a run of combining marks after a space (junk found in the shared alpaca_zh data) attaches to no
    # letter: 40 stray marks + 1 full stop of 48 non-whitespace characters
    junk = "It is 1976. " + "\u0326" * 40
    assert _symbol_count(_codepoints(junk)) == 41
    # marks on letters (Hindi, Arabic, decomposed Latin) and on digits (keycap 1️⃣) are no symbols
    for text in ["हिन्दी भाषा", "اَلْعَرَبِيَّةُ", "Cafe\u0301", "1\ufe0f\u20e3"]:
        assert _symbol_count(_codepoints(text)) == 0, text
    assert _symbol_count(_codepoints("\u2764\ufe0f!")) == 3  # emoji + its variation selector, and "!"
    sym = flt({"name": "char_ratio", "char_class": "symbol", "max": 0.5})
    assert not sym.keep(junk)
