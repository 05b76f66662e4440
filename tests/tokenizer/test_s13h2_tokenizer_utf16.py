"""`steel tokenizer train` on UTF-16 input: a file with a byte order mark (or Chinese without one) failed with
"FILE:1: invalid UTF-8" and no word of its encoding, and an ASCII .txt without one (valid UTF-8, a NUL every other
byte) was trained on, NULs and all, without a word. It now fails with the hint `steel data prepare` gives."""

from __future__ import annotations

import codecs
import json

import pytest
import zstandard

from steel.cli import UserError
from steel.tokenizer.train import iter_corpus, iter_documents

EN = "\n".join(f"plain ascii document number {k} about rivers and mountains" for k in range(100)) + "\n"
ZH = "".join(json.dumps({"text": f"长江是中国最长的河流，第{k}段"}, ensure_ascii=False) + "\n" for k in range(100))


@pytest.mark.parametrize("name, text, codec, bom, told", [
    ("en.txt", EN, "utf-16-le", b"", "UTF-16-LE (no byte order mark, told by its first bytes), not UTF-8; convert it, "
                                     "e.g. `iconv -f UTF-16LE -t UTF-8`"),
    ("en.txt", EN, "utf-16-le", codecs.BOM_UTF16_LE, "UTF-16-LE (it opens with that byte order mark), not UTF-8; "
                                                     "convert it, e.g. `iconv -f UTF-16 -t UTF-8`"),
    ("zh.jsonl", ZH, "utf-16-be", b"", "UTF-16-BE (no byte order mark, told by its first bytes), not UTF-8; convert "
                                       "it, e.g. `iconv -f UTF-16BE -t UTF-8`"),
    ("zh.jsonl", ZH, "utf-16-be", codecs.BOM_UTF16_BE, "UTF-16-BE (it opens with that byte order mark), not UTF-8; "
                                                       "convert it, e.g. `iconv -f UTF-16 -t UTF-8`"),
    ("zh.jsonl.zst", ZH, "utf-16-le", b"", "UTF-16-LE (no byte order mark, told by its first bytes), not UTF-8; "
                                           "convert it, e.g. `zstd -dc {path} | iconv -f UTF-16LE -t UTF-8 | zstd > "
                                           "NEW.jsonl.zst`"),
])
def test_utf16_input_fails_naming_file_and_encoding(tmp_path, name, text, codec, bom, told):
    data = bom + text.encode(codec)
    path = tmp_path / name
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if name.endswith(".zst") else data)
    told = told.format(path=path)
    with pytest.raises(UserError) as e:
        list(iter_documents(path))
    assert str(e.value) == f"{path}: the file is {told}"
    with pytest.raises(UserError) as e:  # (and through the corpus, with a document limit)
        list(iter_corpus([path], limit_docs=10))
    assert str(e.value) == f"{path}: the file is {told}"


def test_utf8_input_is_still_read(tmp_path):
    path = tmp_path / "zh.jsonl"
    path.write_bytes(ZH.encode("utf-8"))
    assert list(iter_documents(path)) == [f"长江是中国最长的河流，第{k}段" for k in range(100)]
