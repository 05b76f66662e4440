"""Telling UTF-16 without a byte order mark (sources._bomless_utf16) from other text.

Shift-JIS text with a stray NUL byte in its first 4 KB was taken for UTF-16-BE (a lead byte 0x81-0x9F and its
trail read as CJK U+8140-9FFC) and the whole file refused with an `iconv -f UTF-16BE` hint. Korean, Russian and Greek
in UTF-16 were not told at all (Hangul, Cyrillic and Greek were not "text"; Russian in UTF-16 is even valid UTF-8):
a rejection per line. A zstd file whose first frame holds under 8 bytes was not told either."""

from __future__ import annotations

import json

import pytest
import zstandard

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader

JA = ["吾輩は猫である。名前はまだ無い。", "どこで生れたかとんと見当がつかぬ。", "何でも薄暗いじめじめした所で泣いていた事だけは記憶している。",
      "今日は天気がいいので、公園へ散歩に行きました。", "桜の花がとてもきれいでした。"]
KO = ["안녕하세요. 오늘은 날씨가 정말 좋습니다.", "서울에서 부산까지 기차로 세 시간 정도 걸립니다.",
      "이 소프트웨어는 오픈 소스입니다.", "자세한 내용은 문서를 참고하세요."]
RU = ["Привет, мир! Сегодня хорошая погода.", "Москва — столица России.",
      "Подробности смотрите в документации.", "Мы каждый день делаем резервную копию базы данных."]
EL = ["Γεια σου κόσμε.", "Σήμερα ο καιρός είναι καλός.", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας."]
ZH = ["长江是中国最长的河流，流经十一个省份。", "黄河是中国第二长河。"]
TW = ["長江是中國最長的河流，流經十一個省份。", "黃河是中國第二長河。"]


def _items(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    extra = {"txt_unit": "line"} if ".txt" in name else {}
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)], **extra}]})
    return [(it.line, it.doc, it.reason, it.detail) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


def _hint(codec: str) -> list:
    name = codec.upper()
    return [(0, None, "invalid_utf8", f"the file is {name} (no byte order mark, told by its first bytes), not UTF-8; "
                                      f"convert it, e.g. `iconv -f {name.replace('-LE', 'LE').replace('-BE', 'BE')} "
                                      f"-t UTF-8`")]


def test_shift_jis_with_a_stray_nul_is_read_line_by_line(tmp_path):
    lines = [JA[k % len(JA)] for k in range(60)]
    lines[7] += "\0" + "1"  # (a NUL and a digit: the Shift-JIS pairs after it stay at even offsets)
    data = "\r\n".join(lines).encode("cp932") + b"\r\n"
    assert data.count(0) == 1 and data.index(0) < 4096
    items = _items(tmp_path, "ja.txt", data)
    # each line is not UTF-8 and is rejected on its own, as any Shift-JIS file is; not the whole file as UTF-16
    assert [(line, reason) for line, _, reason, _ in items] == [(k, "invalid_utf8") for k in range(1, 61)]


@pytest.mark.parametrize("codec", ["euc_kr", "gbk", "big5"])
def test_east_asian_two_byte_text_with_a_stray_nul_is_read_line_by_line(tmp_path, codec):
    """Their pairs read as Hangul in UTF-16-BE, now taken for text: a legacy encoding's reading is preferred."""
    texts = {"euc_kr": KO, "gbk": ZH, "big5": TW}[codec]
    lines = [texts[k % len(texts)] for k in range(80)]
    lines[5] += "\0" + "1"
    data = "\r\n".join(lines).encode(codec) + b"\r\n"
    items = _items(tmp_path, "a.txt", data)
    assert [(line, reason) for line, _, reason, _ in items] == [(k, "invalid_utf8") for k in range(1, 81)]


def test_utf8_cut_at_its_start_with_a_stray_nul_is_read_line_by_line(tmp_path):
    """A piece of a Russian UTF-8 file split by bytes: its two-byte characters read as Hangul in UTF-16-BE."""
    lines = [RU[k % len(RU)] for k in range(40)]
    lines[3] += "\0"
    data = ("\n".join(lines) + "\n").encode("utf-8")[1:]  # (opens with the second byte of "П")
    items = _items(tmp_path, "ru.txt", data)
    assert items[0][:1] + items[0][2:3] == (1, "invalid_utf8")
    assert [doc for _, doc, _, _ in items[1:]] == lines[1:]


@pytest.mark.parametrize("texts", [KO, RU, EL, KO + RU + ZH], ids=["ko", "ru", "el", "mixed"])
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("suffix", [".jsonl", ".txt"])
def test_utf16_of_korean_russian_greek_is_one_rejection_naming_it(tmp_path, texts, codec, suffix):
    docs = [texts[k % len(texts)] for k in range(200)]
    text = ("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs) if suffix == ".jsonl"
            else "\n".join(docs) + "\n")
    assert _items(tmp_path, "a" + suffix, text.encode(codec)) == _hint(codec)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_in_zstd_whose_first_frame_is_tiny_is_one_rejection(tmp_path, codec):
    """A streaming writer that flushes early writes a first frame of a few bytes."""
    data = "".join(json.dumps({"text": ZH[k % 2]}, ensure_ascii=False) + "\n" for k in range(100)).encode(codec)
    cctx = zstandard.ZstdCompressor()
    packed = cctx.compress(data[:6]) + cctx.compress(data[6:])
    name = codec.upper().replace("-LE", "LE").replace("-BE", "BE")
    assert _items(tmp_path, "a.jsonl.zst", packed) == [
        (0, None, "invalid_utf8", f"the file is {codec.upper()} (no byte order mark, told by its first bytes), not "
                                  f"UTF-8; convert it, e.g. `zstd -dc {tmp_path / 'a.jsonl.zst'} | iconv -f {name} -t "
                                  f"UTF-8 | zstd > NEW.jsonl.zst`")]
