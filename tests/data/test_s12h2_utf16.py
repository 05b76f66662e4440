"""UTF-16 input: the hint said to convert from GB18030. A source of UTF-16 files (byte order mark or not) that
keeps nothing is now told `iconv -f UTF-16LE -t UTF-8`; a GBK one still GB18030. A UTF-16 file without a byte order
mark (a NUL every other byte for ASCII) was read as UTF-8: a rejection per line, `malformed_json` for ASCII (so
the summary told to check text_field), lines cut at the wrong bytes; it is now one rejection naming its encoding."""

from __future__ import annotations

import json
import logging

import pytest

from steel.cli import UserError
from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.prepare import kept_nothing, prepare
from steel.data.sources import SourceReader

ZH = [f"长江是中国最长的河流，流经十一个省份。第{k}段" for k in range(4)]
EN = [f"plain ascii document number {k}" for k in range(4)]
LOG = logging.getLogger("test.steel.data.s12h2")


def _content(suffix: str, texts: list[str]) -> str:
    if suffix == ".jsonl":
        return "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    if suffix == ".csv":
        return "text,id\n" + "".join(f"{t},{k}\n" for k, t in enumerate(texts))
    return "\n\n".join(texts) + "\n"


def _items(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    extra = {"txt_unit": "paragraph"} if name.endswith(".txt") else {}
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": [str(path)], **extra}]})
    return [(it.line, it.doc, it.reason, it.detail) for it in SourceReader(cfg.sources[0], cfg).read_file(path)]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".txt"])
@pytest.mark.parametrize("texts", [ZH, EN], ids=["zh", "ascii"])
@pytest.mark.parametrize("codec, name", [("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE")])
def test_utf16_without_bom_is_one_rejection_naming_it(tmp_path, suffix, texts, codec, name):
    items = _items(tmp_path, "a" + suffix, _content(suffix, texts).encode(codec))
    assert items == [(0, None, "invalid_utf8", f"the file is {codec.upper()} (no byte order mark, told by its first "
                                               f"bytes), not UTF-8; convert it, e.g. `iconv -f {name} -t UTF-8`")]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".txt"])
@pytest.mark.parametrize("codec", ["gbk", "latin-1"])
def test_other_encodings_are_read_line_by_line_as_before(tmp_path, suffix, codec):
    texts = ZH if codec == "gbk" else [t + " café" for t in EN]
    items = _items(tmp_path, "a" + suffix, _content(suffix, texts).encode(codec))
    assert len(items) == 4 and {it[2] for it in items} == {"invalid_utf8"} and all(it[0] > 0 for it in items)


def test_utf8_with_a_few_nul_bytes_is_read(tmp_path):
    texts = [f"a\0b document {k}" for k in range(40)]
    items = _items(tmp_path, "a.csv", _content(".csv", texts).encode("utf-8"))
    assert [it[1] for it in items] == texts


def _prepare_fails(tmp_path, tok, data: dict[str, bytes]) -> str:
    for name, b in data.items():
        (tmp_path / name).write_bytes(b)
    cfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": str(tok), "workers": 0,
                                 "sources": [{"name": "s", "path": list(data)}]})
    with pytest.raises(UserError) as e:
        prepare(cfg, tmp_path / "out", log=LOG, quiet=True)
    return str(e.value)


def test_the_hint_of_a_source_of_utf16_files(tmp_path, qwen_tokenizer_dir):
    msg = _prepare_fails(tmp_path, qwen_tokenizer_dir, {"bom.jsonl": _content(".jsonl", ZH).encode("utf-16"),
                                                        "le.jsonl": _content(".jsonl", EN).encode("utf-16-le")})
    assert ("source 's': all 2 records rejected (invalid_utf8 2); its files are UTF-16-LE, not UTF-8 (see the "
            "rejections above): convert them, e.g. iconv -f UTF-16LE -t UTF-8;") in msg
    assert "GB18030" not in msg


def test_the_hint_of_gbk_and_of_a_mix(tmp_path, qwen_tokenizer_dir):
    gbk = _content(".jsonl", ZH).encode("gbk")
    msg = _prepare_fails(tmp_path, qwen_tokenizer_dir, {"gbk.jsonl": gbk})
    assert "all 4 records rejected (invalid_utf8 4); its files are not UTF-8 text (GBK or GB18030? see the " \
           "rejections above): convert them, e.g. iconv -f GB18030 -t UTF-8;" in msg
    (tmp_path / "mix").mkdir()
    msg = _prepare_fails(tmp_path / "mix", qwen_tokenizer_dir, {
        "gbk.jsonl": gbk, "be.jsonl": _content(".jsonl", ZH).encode("utf-16-be")})
    assert ("all 5 records rejected (invalid_utf8 5); its files are not UTF-8 text: 1 of the rejections are UTF-16-BE "
            "files (iconv -f UTF-16BE -t UTF-8), the others GBK or GB18030? (iconv -f GB18030 -t UTF-8;") in msg


def test_the_hint_without_the_rejections_at_hand_says_both():
    """`steel data inspect` and merge read only the manifest's counts."""
    sources = {"s": {"read": 3, "kept": 0, "filtered": {}, "rejected": {"invalid_utf8": 3}, "kind": "text"}}
    assert kept_nothing(sources)[0] == [
        "source 's': all 3 records rejected (invalid_utf8 3); its files are not UTF-8 text (GBK or GB18030? UTF-16? "
        "the prepare logs' rejections say): convert them, e.g. iconv -f GB18030 -t UTF-8, or iconv -f UTF-16LE -t UTF-8"]
