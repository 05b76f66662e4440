"""Readers: every format, field mapping, record paths, and the bad-input rejections with file:line."""

from __future__ import annotations

import gzip
import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from steel.config import ConfigError, from_dict
from steel.data.config import DataConfig
from steel.data.sources import SourceReader, detect_format, expand_paths, parse_record_path


def reader(**src) -> SourceReader:
    src.setdefault("name", "s")
    src.setdefault("path", ["x"])
    cfg = from_dict(DataConfig, {"sources": [src], "max_line_bytes": 200, "max_json_file_bytes": 10_000})
    return SourceReader(cfg.sources[0], cfg)


def reader_with(**cfg) -> SourceReader:
    """A reader of one default text source under the DataConfig defaults, overridden by `cfg`."""
    c = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["x"]}], **cfg})
    return SourceReader(c.sources[0], c)


def items(r: SourceReader, path):
    return [(it.line, it.doc, it.reason) for it in r.read_file(path)]


def jsonl_bytes(records) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


RECORDS = [{"text": "第一篇"}, {"text": "second doc", "meta": {"body": "nested body"}}, {"text": "三"}]


@pytest.mark.parametrize("suffix, compress", [
    (".jsonl", lambda b: b),
    (".jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    (".jsonl.gz", gzip.compress),
])
def test_jsonl_plain_zst_gz(tmp_path, suffix, compress):
    p = tmp_path / f"d{suffix}"
    p.write_bytes(compress(jsonl_bytes(RECORDS)))
    assert detect_format(p) == suffix[1:]
    assert items(reader(), p) == [(1, "第一篇", None), (2, "second doc", None), (3, "三", None)]


@pytest.mark.parametrize("suffix, compress", [
    (".jsonl", lambda b: b),
    (".jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    (".jsonl.gz", gzip.compress),
    (".json", lambda b: b),  # JSONL under a .json name, read line by line after the whole-file parse fails
])
def test_jsonl_with_bom_keeps_its_first_record(tmp_path, suffix, compress):
    p = tmp_path / f"d{suffix}"
    p.write_bytes(compress(b"\xef\xbb\xbf" + jsonl_bytes(RECORDS)))
    assert items(reader(), p) == [(1, "第一篇", None), (2, "second doc", None), (3, "三", None)]


def test_dotted_field_and_missing_field(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(jsonl_bytes(RECORDS))
    got = items(reader(text_field="meta.body"), p)
    assert got == [(1, None, "missing_field"), (2, "nested body", None), (3, None, "missing_field")]


def test_json_array_and_nested_record_path(tmp_path):
    arr = tmp_path / "a.json"
    arr.write_text(json.dumps([{"text": "a"}, {"text": "b"}, 5]), encoding="utf-8")
    assert items(reader(), arr) == [(1, "a", None), (2, "b", None), (3, None, "not_an_object")]

    squad = {"version": 1, "data": [
        {"title": "t1", "paragraphs": [{"context": "p11"}, {"context": "p12"}]},
        {"title": "t2", "paragraphs": [{"context": "p21"}, {"nocontext": 1}]},
        {"title": "t3"},  # no paragraphs: was skipped without a trace, now one counted missing_field
        {"title": "t4", "paragraphs": []},  # no paragraph at all: nothing to count
    ]}
    p = tmp_path / "squad.json"
    p.write_text(json.dumps(squad), encoding="utf-8")
    got = items(reader(record_path="data[*].paragraphs[*]", text_field="context"), p)
    assert [(d, r) for _, d, r in got] == [("p11", None), ("p12", None), ("p21", None), (None, "missing_field"),
                                           (None, "missing_field")]
    # the same in JSONL: one line holding the whole document
    jl = tmp_path / "squad.jsonl"
    jl.write_text(json.dumps(squad) + "\n", encoding="utf-8")
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["x"], "record_path": "data[*].paragraphs[*]",
                                              "text_field": "context"}]})
    got = items(SourceReader(cfg.sources[0], cfg), jl)
    assert [(n, d, r) for n, d, r in got] == [(1, "p11", None), (1, "p12", None), (1, "p21", None),
                                              (1, None, "missing_field"), (1, None, "missing_field")]
    assert parse_record_path("data[*].paragraphs[0]") == ["data", None, "paragraphs", 0]
    with pytest.raises(ValueError):
        parse_record_path("data[x]")


def test_json_named_file_holding_jsonl(tmp_path):
    p = tmp_path / "eval_set.json"  # belle_eval ships JSONL under a .json name
    p.write_bytes(jsonl_bytes(RECORDS[:2]))
    assert items(reader(), p) == [(1, "第一篇", None), (2, "second doc", None)]


def test_parquet(tmp_path):
    p = tmp_path / "d.parquet"
    table = pa.table({"text": ["x", None, "z"], "meta": [{"lang": "en"}, {"lang": "zh"}, {"lang": "en"}]})
    pq.write_table(table, p, row_group_size=2)
    assert items(reader(), p) == [(1, "x", None), (2, None, "missing_field"), (3, "z", None)]
    assert [d for _, d, _ in items(reader(text_field="meta.lang"), p)] == ["en", "zh", "en"]


def test_csv_with_quoted_newlines_and_bad_rows(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes(b'id,text\n1,"line one\nline two"\n2,plain\n3,bad \xff byte\n4,a,extra\n')
    got = items(reader(), p)
    assert got == [(2, "line one\nline two", None), (4, "plain", None), (5, None, "invalid_utf8"),
                   (6, None, "malformed_csv")]


def test_txt_units(tmp_path):
    p = tmp_path / "d.txt"
    p.write_bytes("para one\nstill one\n\n\npara two\n".encode())
    assert items(reader(txt_unit="file"), p) == [(1, "para one\nstill one\n\n\npara two\n", None)]
    assert items(reader(txt_unit="paragraph"), p) == [(1, "para one\nstill one", None), (5, "para two", None)]
    assert [(n, d) for n, d, _ in items(reader(txt_unit="line"), p)] == [(1, "para one"), (2, "still one"), (5, "para two")]


PACK = {".zst": lambda b: zstandard.ZstdCompressor().compress(b), ".gz": gzip.compress}


@pytest.mark.parametrize("ext", [".zst", ".gz"])
def test_compressed_csv_tsv_and_txt_read_as_their_plain_files(tmp_path, ext):
    # .csv.gz and friends were detected as JSONL (suffix .gz): every row one malformed_json.
    csv_bytes = b'id,text\n1,"line one\nline two"\n2,plain\n3,bad \xff byte\n4,a,extra\n'
    tsv_bytes = b'text\tid\n"Quoted" start\t1\nrow two\t2\n'
    txt_bytes = "para one\nstill one\n\n\npara two\n".encode()
    for name, data, r in [("d.csv", csv_bytes, reader()), ("d.tsv", tsv_bytes, reader()),
                          ("d.txt", txt_bytes, reader(txt_unit="paragraph")), ("d.txt", txt_bytes, reader(txt_unit="file"))]:
        plain, packed = tmp_path / name, tmp_path / (name + ext)
        plain.write_bytes(data)
        packed.write_bytes(PACK[ext](data))
        assert detect_format(packed) == detect_format(plain)
        assert items(r, packed) == items(r, plain) and items(r, plain)
    # `format: csv` on any name: the compression is told by the magic number
    odd = tmp_path / "rows.data"
    odd.write_bytes(PACK[ext](csv_bytes))
    assert items(reader(format="csv"), odd) == items(reader(), tmp_path / "d.csv")
    # a truncated file: the rows before the cut are kept (those of the whole 1 MiB blocks decompressed before
    # it), the rest of the file is one unreadable_file
    rows = b"text\n" + b"".join(b"row %d\n" % i for i in range(300_000))
    cut = tmp_path / ("cut.csv" + ext)
    cut.write_bytes(PACK[ext](rows)[:-200])
    got = items(reader(), cut)
    assert got[-1][2] == "unreadable_file" and got[:-1] == [(i + 2, f"row {i}", None) for i in range(len(got) - 1)]
    assert 100_000 < len(got) - 1 < 300_000


def test_bad_jsonl_lines_are_rejected_with_line_numbers(tmp_path):
    p = tmp_path / "bad.jsonl"
    lines = [
        b'{"text": "ok"}',
        b'{"text": "broken',  # malformed JSON
        b'{"text": "bad \xff\xfe utf8"}',  # invalid UTF-8
        b'{"title": "no text"}',  # missing field
        b'{"text": 42}',  # wrong type
        b'["not", "an", "object"]',
        b"",  # blank line: not a record
        b'{"text": "' + b"x" * 300 + b'"}',  # longer than max_line_bytes=200
        b'{"text": "last"}',
    ]
    p.write_bytes(b"\n".join(lines) + b"\n")
    got = items(reader(), p)
    assert got == [(1, "ok", None), (2, None, "malformed_json"), (3, None, "invalid_utf8"), (4, None, "missing_field"),
                   (5, None, "bad_field_type"), (6, None, "not_an_object"), (8, None, "too_large"), (9, "last", None)]


def test_unreadable_and_truncated_files(tmp_path):
    missing = tmp_path / "gone.jsonl"
    assert items(reader(), missing) == [(0, None, "unreadable_file")]
    p = tmp_path / "trunc.jsonl.zst"
    data = zstandard.ZstdCompressor().compress(jsonl_bytes([{"text": f"doc {i * 7919 % 100003}"} for i in range(30000)]))
    p.write_bytes(data[: len(data) // 2])
    got = items(reader(), p)
    assert got[-1][2] == "unreadable_file"  # the rest of the file is one counted rejection
    assert all(r is None for _, _, r in got[:-1]) and len(got) > 1  # records before the cut are kept
    bad = tmp_path / "notzstd.jsonl.zst"  # not zstd at all, or a corrupt frame after good ones
    bad.write_bytes(b"not zstd")
    assert items(reader(), bad) == [(0, None, "unreadable_file")]
    bad.write_bytes(zstandard.ZstdCompressor().compress(jsonl_bytes([{"text": "kept"}])) + b"\x28\xb5\x2f\xfdgarbage")
    assert items(reader(), bad) == [(1, "kept", None), (1, None, "unreadable_file")]
    gz = bytearray(gzip.compress(jsonl_bytes([{"text": f"doc {i}"} for i in range(20000)])))
    gz[200:400] = bytes(b ^ 0x55 for b in gz[200:400])  # corrupt deflate data: zlib.error, not OSError
    bad = tmp_path / "corrupt.jsonl.gz"
    bad.write_bytes(bytes(gz))
    got = items(reader(), bad)
    assert got[-1][2] == "unreadable_file" and all(r is None for _, _, r in got[:-1])
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"text": "y" * 20_000}]))
    assert items(reader(), big) == [(0, None, "too_large")]


def test_globs_and_missing_paths(tmp_path):
    for name in ("b.jsonl", "a.jsonl", "sub/c.jsonl"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["*.jsonl", "**/c.jsonl", "a.jsonl"]}]})
    got = expand_paths(cfg.sources[0], tmp_path, 0)
    assert [p.name for p in got] == ["a.jsonl", "b.jsonl", "c.jsonl"]  # sorted per pattern, unique
    cfg = from_dict(DataConfig, {"sources": [{"name": "s", "path": ["nothing*.jsonl"]}]})
    with pytest.raises(ConfigError, match=r"sources\[0\].path\[0\]: no file matches"):
        expand_paths(cfg.sources[0], tmp_path, 0)


def test_csv_cell_over_the_default_csv_limit_and_unclosed_quote(tmp_path):
    # Python's csv refuses cells over 131,072 characters: that was a csv.Error traceback killing the run.
    p = tmp_path / "big.csv"
    p.write_text("id,text\n1,正常\n2," + "长" * 200_000 + "\n3,之后\n", encoding="utf-8")
    assert items(reader_with(), p) == [(2, "正常", None), (3, "长" * 200_000, None), (4, "之后", None)]
    # A cell over csv's limit (max_doc_chars, at least csv's default), or an unclosed quote swallowing
    # lines past it: one counted rejection, the same whatever limit an earlier reader had set; the rows
    # after it are read (those the quote swallowed again from the line after the quote's).
    small = reader_with(max_doc_chars=1000)
    assert items(small, p) == [(2, "正常", None), (3, None, "too_large"), (4, "之后", None)]
    assert len(items(reader_with(), p)) == 3 and items(small, p)[1] == (3, None, "too_large")
    # A quote never closed, past the limit: one rejection, and the rest of the file (which it took) is not read.
    q = tmp_path / "quote.csv"
    q.write_text('id,text\n1,ok\n2,"never closed\n' + "more\n" * 30_000 + "3,x\n", encoding="utf-8")
    got = list(small.read_file(q))
    assert [(it.line, it.doc, it.reason) for it in got] == [(2, "ok", None), (3, None, "too_large")]
    assert "lines 3-30004; the quote is not closed by the end of the file" in got[1].detail


def test_csv_multiline_cell_over_the_limit_is_one_rejection(tmp_path):
    # A real quoted cell of many lines over the limit: its lines were read again as rows, each kept as a
    # document (one column) and counted twice. It is one too_large; the rows after it are read.
    import csv as csv_mod

    p = tmp_path / "book.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv_mod.writer(f)
        w.writerows([["text"], ["first doc"], ["\n".join(f'paragraph {i} of a "book"' for i in range(8000))],
                     ["last doc"]])
    got = list(reader_with(max_doc_chars=1000).read_file(p))
    assert [(it.line, it.doc, it.reason) for it in got] == [(2, "first doc", None), (3, None, "too_large"),
                                                             (8003, "last doc", None)]
    assert "in the row of lines 3-8002" in got[1].detail
    # QUOTE_NONE: a quote is text, a long line is one row whatever its quotes
    t = tmp_path / "t.tsv"
    t.write_text('text\nok\n"' + "x" * 150_000 + '\nafter\n', encoding="utf-8")
    assert items(reader_with(max_doc_chars=1000), t) == [(2, "ok", None), (3, None, "too_large"), (4, "after", None)]


def test_tsv_quoted_as_csv_writer_does_is_read_with_quoting(tmp_path):
    # pandas' to_csv(sep="\t") and csv.writer quote a cell holding a quote, tab or newline: read with no
    # quoting those kept their quotes and a multi-line cell was cut into rows. `auto` tells from the head.
    p = tmp_path / "w.tsv"
    p.write_text('text\tid\n"quoted cell"\t1\nsay "hi"\t2\n"multi\nline"\t3\n"a ""b"""\t4\n', encoding="utf-8")
    assert items(reader(), p) == [(2, "quoted cell", None), (3, 'say "hi"', None), (4, "multi\nline", None),
                                  (6, 'a "b"', None)]
    assert items(reader(csv_quoting="none"), p)[0] == (2, '"quoted cell"', None)


def test_truncated_gzip_keeps_the_lines_before_the_cut(tmp_path):
    # GzipFile.read(1 MiB) raised on the cut and dropped what it had decompressed in that call: every line.
    data = jsonl_bytes([{"text": f"record {i} " + hashlib.sha256(str(i).encode()).hexdigest()} for i in range(3000)])
    whole = gzip.compress(data)
    for name in ("t.jsonl.gz", "t.json.gz"):
        p = tmp_path / name
        p.write_bytes(whole[: len(whole) * 4 // 5])
        got = items(reader(), p)
        # Independent reference: zlib fed the same bytes, complete lines counted
        import zlib

        readable = zlib.decompressobj(31).decompress(whole[: len(whole) * 4 // 5])
        n = readable.count(b"\n")
        assert got[:-1] == [(i + 1, f"record {i} " + hashlib.sha256(str(i).encode()).hexdigest(), None) for i in range(n)]
        assert got[-1][2] == "unreadable_file" and n > 2000


def test_compressed_jsonl_with_a_bad_first_line_is_streamed(tmp_path):
    # Its first line does not parse: it was read whole (about 3x its size) and, over max_json_file_bytes,
    # all its records were one too_large.
    data = b'{"text": "cut\n' + jsonl_bytes([{"text": f"doc {i}"} for i in range(50)])
    p = tmp_path / "c.json.gz"
    p.write_bytes(gzip.compress(data))
    got = items(reader_with(max_json_file_bytes=200), p)
    assert got == [(1, None, "malformed_json")] + [(i + 2, f"doc {i}", None) for i in range(50)]


def test_corrupt_zstd_keeps_every_record_before_the_bad_block(tmp_path):
    # Independent reference: zstandard's stream reader fed 1 KiB at a time, counting complete lines.
    import io

    lines = [{"text": f"record {i} " + hashlib.sha256(str(i).encode()).hexdigest() * 4} for i in range(20000)]
    data = bytearray(zstandard.ZstdCompressor(level=3).compress(jsonl_bytes(lines)))
    mid = len(data) * 2 // 3
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
    ref = b""
    stream = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(data)), read_size=1024)
    with pytest.raises(zstandard.ZstdError):
        while chunk := stream.read(1024):
            ref += chunk
    want = ref.count(b"\n")
    p = tmp_path / "c.jsonl.zst"
    p.write_bytes(bytes(data))
    got = items(reader_with(), p)
    assert got[-1][2] == "unreadable_file" and all(r is None for _, _, r in got[:-1])
    assert len(got) - 1 == want > 10_000  # the 1 MiB feed lost every record decoded in its last read


def test_json_file_of_jsonl_with_a_bad_first_line(tmp_path):
    p = tmp_path / "j.json"
    p.write_bytes(b'{"text": "broken\n{"text": "second"}\n{"text": "third"}\n')
    assert items(reader(), p) == [(1, None, "malformed_json"), (2, "second", None), (3, "third", None)]
    cut = tmp_path / "cut.json"  # a JSON document cut short is one rejection, not lines read as JSONL
    cut.write_bytes(b'{"version": 1, "data": [\n{"text": "first doc"},\n{"text": "second doc"}\n')
    assert [r for _, _, r in items(reader(), cut)] == ["malformed_json"]
    pretty = tmp_path / "pretty.json"  # a broken pretty-printed object stays one rejection
    pretty.write_bytes(b'{\n  "data": [\n    {"text": "a"}\n  ]\n')
    assert items(reader(), pretty) == [(5, None, "malformed_json")]


@pytest.mark.parametrize("suffix, compress", [
    (".jsonl", lambda b: b),
    (".jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    (".jsonl.gz", gzip.compress),
])
def test_max_line_bytes_does_not_depend_on_compression(tmp_path, suffix, compress):
    line = b'{"text": "abcdefghij"}'  # 22 bytes without its newline
    p = tmp_path / f"d{suffix}"
    p.write_bytes(compress(line + b"\n" + line + b"\r\n"))
    for limit, want in ((22, [(1, "abcdefghij", None), (2, "abcdefghij", None)]), (21, [(1, None, "too_large"), (2, None, "too_large")])):
        assert items(reader_with(max_line_bytes=limit), p) == want


# -- review fixes: CSV quoting and line numbers, JSON fallbacks, compressed JSON, deep nesting, long lines --


def test_tsv_quotes_are_text_and_csv_quoting_is_a_choice(tmp_path):
    # A stray `"` in a TSV merged rows 4-6 into one document and unquoted row 3, all without a rejection.
    p = tmp_path / "q.tsv"
    p.write_bytes(b'text\tid\nrow one ok\t1\n"Quoted" start then text\t2\n"unbalanced start of a row\t3\n'
                  b"row four\t4\nrow five\t5\n")
    assert items(reader(), p) == [(2, "row one ok", None), (3, '"Quoted" start then text', None),
                                  (4, '"unbalanced start of a row', None), (5, "row four", None), (6, "row five", None)]
    # The same file read with CSV quoting: the bad rows are rejected, the rows after them still read.
    assert items(reader(csv_quoting="minimal"), p) == [
        (2, "row one ok", None), (3, None, "malformed_csv"), (4, None, "malformed_csv"), (5, "row four", None),
        (6, "row five", None)]
    # ...and a .csv can be read without quoting
    c = tmp_path / "noquote.csv"
    c.write_bytes(b'text,id\n"half quoted,1\nnext,2\n')
    assert items(reader(csv_quoting="none"), c) == [(2, '"half quoted', None), (3, "next", None)]
    with pytest.raises(ConfigError, match=r"csv_quoting"):
        reader(csv_quoting="sometimes")


def test_csv_stray_quotes_and_short_rows_are_rejected_with_their_lines(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes(b'text,id\nok,1\n"Quoted" start,2\n"never closed,3\nrow four,4\n\nrow six,6\nshort\n'
                  b'"multi\nline",8\n')
    got = [(n, d, r) for n, d, r in items(reader(), p)]
    # line 3: text after a closing quote; line 4: a quote that swallows the file to its end (lines 5-10 are
    # read again from line 5); line 8: fewer cells than the header; lines 9-10: one quoted two-line cell
    assert got == [(2, "ok", None), (3, None, "malformed_csv"), (4, None, "malformed_csv"), (5, "row four", None),
                   (7, "row six", None), (8, None, "malformed_csv"), (9, "multi\nline", None)]


def test_csv_line_numbers_after_blank_lines(tmp_path):
    p = tmp_path / "blank.csv"
    p.write_bytes(b"text\nfirst doc\n\n\n\nfifth line doc \xff\n")
    assert items(reader(), p) == [(2, "first doc", None), (6, None, "invalid_utf8")]
    q = tmp_path / "multi.csv"
    q.write_bytes(b'\ntext,id\n"a\n\nb",1\n\r\n\nc,2\n')
    assert items(reader(), q) == [(3, "a\n\nb", None), (8, "c", None)]


def test_json_file_of_jsonl_with_a_bad_utf8_line(tmp_path):
    p = tmp_path / "jl.json"
    p.write_bytes(b'{"text": "jsonl in json one"}\n{"text": "bad \xff byte"}\n{"text": "jsonl in json three"}\n')
    assert items(reader(), p) == [(1, "jsonl in json one", None), (2, None, "invalid_utf8"),
                                  (3, "jsonl in json three", None)]
    first = tmp_path / "first.json"  # the bad byte on the first line: most lines are objects, so JSONL
    first.write_bytes(b'{"text": "bad \xff"}\n{"text": "two"}\n{"text": "three"}\n')
    assert items(reader(), first) == [(1, None, "invalid_utf8"), (2, "two", None), (3, "three", None)]
    arr = tmp_path / "arr.json"  # a JSON document with a bad byte stays one rejection
    arr.write_bytes(b'[{"text": "a \xff"},\n{"text": "b"}]\n')
    assert items(reader(), arr) == [(0, None, "invalid_utf8")]


COMPRESS = {".json.gz": gzip.compress, ".json.zst": lambda b: zstandard.ZstdCompressor().compress(b)}


@pytest.mark.parametrize("suffix", list(COMPRESS))
def test_compressed_json_arrays_and_jsonl(tmp_path, suffix):
    compress = COMPRESS[suffix]
    p = tmp_path / f"arr{suffix}"
    p.write_bytes(compress(json.dumps([{"text": f"doc {i}"} for i in range(5)]).encode()))
    assert detect_format(p) == "json"
    want = [(i + 1, f"doc {i}", None) for i in range(5)]
    assert items(reader(), p) == want
    assert items(reader(format="json"), p) == want
    pretty = tmp_path / f"squad{suffix}"  # a pretty-printed document with a record path
    pretty.write_bytes(compress(json.dumps({"data": [{"context": "c1"}, {"context": "c2"}]}, indent=2).encode()))
    assert items(reader(record_path="data[*]", text_field="context"), pretty) == [(1, "c1", None), (2, "c2", None)]
    # JSONL under .json.gz (C4 ships so) is still read line by line, with the same fallback as a plain .json
    jl = tmp_path / f"c4{suffix}"
    jl.write_bytes(compress(b'{"text": "one"}\n{"text": "broken\n{"text": "three"}\n'))
    assert items(reader(), jl) == [(1, "one", None), (2, None, "malformed_json"), (3, "three", None)]
    # the limit applies to the decompressed document (10,000 bytes here; the file is far smaller)
    big = tmp_path / f"big{suffix}"
    big.write_bytes(compress(json.dumps([{"text": "y" * 20_000}]).encode()))
    assert len(big.read_bytes()) < 1000 and items(reader(), big) == [(0, None, "too_large")]
    # a JSONL file past max_json_file_bytes is not loaded whole, so it is not too_large
    many = tmp_path / f"many{suffix}"
    many.write_bytes(compress(jsonl_bytes([{"text": f"line {i}"} for i in range(2000)])))
    assert len(items(reader(), many)) == 2000
    cut = tmp_path / f"cut{suffix}"  # a truncated file is one counted read error, as for compressed JSONL
    cut.write_bytes(p.read_bytes()[:-8])
    assert [r for _, _, r in items(reader(), cut)] == ["unreadable_file"]


def test_deeply_nested_json_is_one_malformed_record(tmp_path):
    deep = b'{"a": ' * 5000 + b"1" + b"}" * 5000
    lines = b'{"text": "ok"}\n' + deep + b'\n{"text": "after"}\n'
    for name in ("deep.jsonl", "deep.json"):  # .json: JSONL under a .json name
        p = tmp_path / name
        p.write_bytes(lines)
        assert items(reader_with(), p) == [(1, "ok", None), (2, None, "malformed_json"), (3, "after", None)]
    doc = tmp_path / "doc.json"
    doc.write_bytes(b"[" + deep + b"]")
    assert items(reader_with(), doc) == [(0, None, "malformed_json")]
    first = tmp_path / "first.json"  # the deep line first: the JSONL check must not crash either
    first.write_bytes(deep + b'\n{"text": "two"}\n{"text": "three"}\n')
    assert items(reader_with(), first) == [(1, None, "malformed_json"), (2, "two", None), (3, "three", None)]


@pytest.mark.parametrize("suffix, compress", [
    (".jsonl", lambda b: b),
    (".jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    (".jsonl.gz", gzip.compress),
])
def test_a_long_line_is_counted_and_never_held_whole(tmp_path, suffix, compress):
    import random
    import tracemalloc

    # 16 MB of hex on one line (compresses only ~2x, so zstd/gzip hand it over in many blocks)
    long = b'{"text": "' + random.Random(0).randbytes(8 << 20).hex().encode() + b'"}'
    p = tmp_path / f"long{suffix}"
    p.write_bytes(compress(b'{"text": "before"}\n' + long + b'\n{"text": "after"}'))
    del long
    r = reader_with(max_line_bytes=1000)
    tracemalloc.start()
    try:
        got = list(r.read_file(p))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(it.line, it.doc, it.reason) for it in got] == [(1, "before", None), (2, None, "too_large"),
                                                            (3, "after", None)]
    # Held at once: a 1 MiB read block and the decompressor's output, not the 16 MB line (it was, twice over).
    assert peak < 6 << 20, peak
    assert f"{(16 << 20) + 12:,} bytes" in got[1].detail  # the whole line is counted, though not kept


def test_byte_lines_across_tiny_blocks():
    from steel.data.sources import LongLine, _lines

    data = b'\xef\xbb\xbf{"a": 1}\n\n' + b"x" * 50 + b"\r\n" + b"y" * 11 + b"\r\nlast"
    for size in (1, 2, 3, 7, 64, len(data)):
        blocks = [data[i : i + size] for i in range(0, len(data), size)]
        assert list(_lines(iter(blocks))) == data.split(b"\n")
        # at most 11 bytes a line, a "\r" before the newline not counted: the 50 x's are one LongLine
        assert list(_lines(iter(blocks), 11)) == [b'\xef\xbb\xbf{"a": 1}', b"", LongLine(51), b"y" * 11 + b"\r",
                                                  b"last"]
