"""Review 4, filters: the Latin class holds every Latin letter (Vietnamese, IPA, ligatures), and a blocklist
file saved with a UTF-8 BOM blocks its first word."""

from __future__ import annotations

import pytest

from steel.data.config import NormalizeConfig
from steel.data.filters import build_filters
from steel.data.normalize import Normalizer


def flt(spec, **kw):
    return build_filters([spec], setup=True, **kw)[0]


@pytest.mark.parametrize("text", [
    "Tiếng Việt",  # ế U+1EBF, ệ U+1EC7: Latin Extended Additional (NFC, as Vietnamese is written)
    "ɪŋɡlɪʃ",  # IPA letters
    "ﬁnal oﬃce",  # ligatures U+FB01, U+FB03
    "Ｌａｔｉｎ",  # full-width letters (kept by NFC)
])
def test_latin_letters_of_every_block_count_as_latin(text):
    # every letter of `text` is a Latin letter: share 1 of the letters, 1 of the non-whitespace characters
    assert flt({"name": "script_share", "script": "latin", "min_share": 1.0}).keep(text)
    assert flt({"name": "char_ratio", "char_class": "latin", "min": 1.0}).keep(text)


def test_latin_share_of_a_vietnamese_sentence():
    text = "Tiếng Việt là ngôn ngữ chính thức của Việt Nam"  # 37 letters (5+4+2+4+3+5+4+3+4+3), all Latin
    assert flt({"name": "script_share", "script": "latin", "min_share": 1.0}).keep(text)
    # one Greek and one Cyrillic letter added: 37 / 39 Latin
    mixed = text + " αя"
    assert flt({"name": "script_share", "script": "latin", "min_share": 37 / 39}).keep(mixed)
    assert not flt({"name": "script_share", "script": "latin", "min_share": 37 / 39 + 1e-9}).keep(mixed)


def test_latin_class_still_excludes_signs_and_other_scripts():
    latin = flt({"name": "char_ratio", "char_class": "latin", "max": 0.0})
    for text in ("3×4÷2", "αβγ", "привет", "中文", "ª"):  # ª is a letter, but Unicode does not name it LATIN
        assert latin.keep(text), text


@pytest.mark.parametrize("control_chars", [True, False])
def test_blocklist_file_with_a_bom_blocks_its_first_word(tmp_path, control_chars):
    (tmp_path / "block.txt").write_bytes("\ufeff澳门赌场\n免费领取\n".encode())
    norm = Normalizer(NormalizeConfig(control_chars=control_chars))
    block = flt({"name": "blocklist", "file": "block.txt"}, root=tmp_path, normalize=norm)
    assert not block.keep(norm("欢迎来到澳门赌场")) and not block.keep(norm("免费领取"))
    assert block.keep(norm("今天天气很好"))
    # no normalizer given (a caller of build_filters without one): the same words
    assert not flt({"name": "blocklist", "file": "block.txt"}, root=tmp_path).keep("澳门赌场")
