"""Readers: files of any supported format -> a stream of documents or rejections, with file:line.

Every reader yields `Item`s, one per record read, in file order. An item carries either the
document (a text, or a chat message list) or the reason it was rejected, so that nothing is lost
without a trace: `read = kept + filtered + rejected` is accounted from these items. Readers stream
(JSONL line by line, holding at most `max_line_bytes` of a line; parquet by record batch; CSV row by
row); a JSON array/document (plain, .gz or .zst) is loaded whole, which is why `max_json_file_bytes`
bounds it (decompressed). A .json(.gz/.zst) file of JSON Lines is streamed as JSONL.
"""

from __future__ import annotations

import codecs
import collections
import csv
import decimal
import glob
import gzip
import hashlib
import io
import itertools
import json
import os
import re
import shlex
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from steel.config import ConfigError
from steel.data.chat import _MISSING, ChatError, extract_messages, get_field
from steel.data.config import DataConfig, SourceConfig

# NOTE: .json.gz/.json.zst are format json, which streams them as JSONL when they hold JSON Lines (C4 ships
# JSONL as .json.gz) and reads them whole when they hold one JSON document (as JSONL, an array was 1 rejection).
# csv/tsv/txt are decompressed by their magic number (`_decompressed`).
_SUFFIX_FORMATS = [(".jsonl.zst", "jsonl.zst"), (".jsonl.gz", "jsonl.gz"), (".json.zst", "json"),
                   (".json.gz", "json"), *((f".{x}.{c}", "txt" if x == "txt" else "csv")
                                           for x in ("csv", "tsv", "txt") for c in ("zst", "gz")),
                   (".zst", "jsonl.zst"), (".gz", "jsonl.gz"), (".jsonl", "jsonl"),
                   (".json", "json"), (".parquet", "parquet"), (".csv", "csv"), (".tsv", "csv"), (".txt", "txt")]
_GZIP_MAGIC, _ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
_BLOCK = 1 << 20  # bytes read (or decompressed) at once


@dataclass(slots=True)
class Item:
    line: int  # 1-based line (jsonl, csv, txt) or record number (json, parquet); 0 for the whole file
    doc: Any = None  # str (kind text) or list of messages (kind chat)
    reason: str | None = None  # rejection reason when doc is None
    detail: str = ""


def detect_format(path: str | Path) -> str:
    name = str(path).lower()
    for suffix, fmt in _SUFFIX_FORMATS:
        if name.endswith(suffix):
            return fmt
    raise ConfigError(f"{path}: cannot tell the format from the file name; set the source's `format`")


def expand_paths(src: SourceConfig, root: Path, index: int, where: str = "sources") -> list[Path]:
    """Globs -> sorted unique files. A pattern that matches nothing is a config error (a typo loses data).

    Errors name the field as `{where}[{index}].path[i]` (SFT passes its `data.datasets`).
    """
    files: list[Path] = []
    for i, given in enumerate(src.path):
        base, pattern = _home_base(given, root)
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        # NOTE: the root is no pattern: a root such as `data[2024]` made every path a character class that
        # matched nothing. A pattern that matches nothing but names a file (`a[1].jsonl`) is that file.
        magic = glob.has_magic(pattern)
        if magic:
            spec = pattern if os.path.isabs(pattern) else os.path.join(glob.escape(str(base)), pattern)
            matches = sorted(glob.glob(spec, recursive=True)) or ([full] if os.path.isfile(full) else [])
        else:
            matches = [full]
        if not magic and not os.path.exists(full):
            raise ConfigError(f"{where}[{index}].path[{i}]: {full} does not exist")
        if not magic and os.path.isdir(full):  # it said "no file matches" a path that exists
            raise ConfigError(f"{where}[{index}].path[{i}]: {full} is a directory; give the files, or a glob such "
                              f"as {os.path.join(given, '*.jsonl')}")  # (`~/data/*.jsonl`, not `data/*.jsonl`: from root)
        matches = [m for m in matches if not os.path.isdir(m)]
        if not matches:
            raise ConfigError(f"{where}[{index}].path[{i}]: no file matches {full}")
        files += [Path(m) for m in matches]
    # NOTE: one file once, whatever name reaches it: a glob matching a symlink and its target, or two hard
    # links (snapshots made with `cp -al`), read the file twice (in two shards of a sharded prepare, too).
    first: dict[tuple | str, Path] = {}
    dirs: dict[str, str] = {}
    for f in files:
        first.setdefault(file_id(f, dirs), f)
    return list(first.values())


def _home_base(pattern: str, root: Path) -> tuple[Path, str]:
    """(the directory a pattern is relative to, the rest of it): `~/data/*.jsonl` -> (the home directory,
    `data/*.jsonl`), as a shell expands it; else (root, pattern).

    NOTE: `~` was taken literally (`ROOT/~/data/*.jsonl`: "no file matches"). The home directory is no
    pattern either, as the root is not."""
    if pattern.startswith("~"):
        head, _, rest = pattern.replace(os.sep, "/").partition("/")
        home = os.path.expanduser(head)
        if home != head:
            return Path(home), rest
    return root, pattern


def file_id(path: str | Path, dirs: dict[str, str] | None = None) -> tuple | str:
    """One id per file whatever the name it is reached by (a symlink to it or to a directory above it, `..`, a
    hard link): (st_dev, st_ino), as os.path.samefile compares, with the real path for a file of one link; the
    real path alone where the filesystem gives no inode number (0) or the file cannot be stat'ed (a dangling
    symlink: its reader reports it). `dirs` caches the real paths of directories across calls.

    NOTE: (st_dev, st_ino) alone does not tell two files apart everywhere: a QEMU 9p share over several host
    filesystems, or a FUSE mount passing a backend's ids, can give two files one inode number, and the second
    was dropped unread. A file with one link has one real path, so only hard links (st_nlink > 1) go by inode;
    where the filesystem ignores case, the real path is case-folded (`_fold_case`)."""
    try:
        st = os.lstat(path)  # one call for a file that is no symlink, the usual case
        link = stat.S_ISLNK(st.st_mode)
        if link:
            st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    if not st.st_ino:
        return os.path.realpath(path)
    if st.st_nlink > 1:
        return (st.st_dev, st.st_ino)
    dirs = {} if dirs is None else dirs
    if link:
        real_path = os.path.realpath(path)
        return (st.st_dev, st.st_ino, _fold_case(os.path.normcase(real_path), real_path, st, dirs))
    # Not a link itself: its real path is its directory's plus its name (one realpath per directory, not per file).
    head, name = os.path.split(os.fspath(path))
    real = dirs.get(head)
    if real is None:
        real = dirs[head] = os.path.realpath(head or ".")
    key = os.path.normcase(os.path.join(real, name))  # (normcase: Windows' names)
    return (st.st_dev, st.st_ino, _fold_case(key, os.path.join(head, name), st, dirs))


def _fold_case(key: str, path: str, st: os.stat_result, dirs: dict[str, str]) -> str:
    """`key` case-folded where `path`'s directory ignores case (macOS, Windows volumes): the same file under
    another case of its name is found there (tried once per directory; a name without letters tells nothing).

    NOTE: realpath keeps the case it is given on such a filesystem: `data/*.jsonl` and a literal `data/A.jsonl`
    for `data/a.jsonl` were two files, read twice (kept twice with dedup off)."""
    head, name = os.path.split(path)
    flag = "\0case:" + head  # (no directory's name holds a NUL)
    ignores = dirs.get(flag)
    if ignores is None:
        other = name.swapcase()
        if other == name:
            return key
        try:
            ignores = "1" if os.path.samestat(st, os.lstat(os.path.join(head, other))) else ""
        except OSError:
            ignores = ""
        dirs[flag] = ignores
    return key.casefold() if ignores else key


_STEP_RE = re.compile(r"^([^\[\]]*)((?:\[(?:\*|-?\d+)\])*)$")


def parse_record_path(path: str) -> list[str | int | None]:
    """`data[*].paragraphs[*]` -> ["data", None, "paragraphs", None] (None = every item, int = one item)."""
    steps: list[str | int | None] = []
    for part in path.split("."):
        m = _STEP_RE.match(part)
        if not m or (not m.group(1) and not m.group(2)):
            raise ValueError(f"cannot parse {path!r} at {part!r} (expected e.g. data[*].paragraphs[*])")
        if m.group(1):
            steps.append(m.group(1))
        for idx in re.findall(r"\[(\*|-?\d+)\]", m.group(2)):
            steps.append(None if idx == "*" else int(idx))
    return steps


DEAD_END = object()  # what `walk_records` yields where a step finds nothing: counted as `missing_field`


def walk_records(obj: Any, steps: list[str | int | None]) -> Iterator[Any]:
    """The values `steps` lead to, in order; DEAD_END for each place where a step finds nothing (a missing
    key, an index out of range, not a list) so that the record is counted, not skipped without a trace.
    An empty list is no record at all."""
    if not steps:
        yield obj
        return
    step, rest = steps[0], steps[1:]
    if isinstance(step, str):
        if isinstance(obj, dict) and step in obj:
            yield from walk_records(obj[step], rest)
        else:
            yield DEAD_END
    elif isinstance(obj, list):
        if step is None:
            for item in obj:
                yield from walk_records(item, rest)
        elif -len(obj) <= step < len(obj):
            yield from walk_records(obj[step], rest)
        else:
            yield DEAD_END
    else:
        yield DEAD_END


class SourceReader:
    """Reads every file of one source; `progress(n)` is told about raw bytes read as it goes."""

    def __init__(self, src: SourceConfig, cfg: DataConfig, progress: Callable[[int], None] = lambda n: None):
        self.src, self.cfg, self.progress = src, cfg, progress
        self.steps = parse_record_path(src.record_path) if src.record_path else None

    # -- record -> document ------------------------------------------------------------------
    def to_item(self, line: int, record: Any) -> Item:
        src = self.src
        if src.kind == "chat":
            try:
                return Item(line, extract_messages(record, src.chat_layout, src.fields, src.system))
            except ChatError as e:
                return Item(line, None, e.reason, str(e))
        value = get_field(record, src.text_field) if isinstance(record, (dict, list)) else _MISSING
        if value is _MISSING:
            return Item(line, None, "missing_field", f"no field {src.text_field!r}")
        if value is None:  # (a parquet/JSON null: the column is there, "no field" sent users to their config)
            return Item(line, None, "missing_field", f"field {src.text_field!r} is null")
        if not isinstance(value, str):
            return Item(line, None, "bad_field_type", f"field {src.text_field!r} is {type(value).__name__}")
        return Item(line, value)

    def _dead_end(self, line: int) -> Item:
        return Item(line, None, "missing_field", f"record path {self.src.record_path!r}: a step finds nothing")

    def records_to_items(self, line: int, record: Any) -> Iterator[Item]:
        if self.steps is None:
            if not isinstance(record, dict):
                yield Item(line, None, "not_an_object", f"record is a JSON {type(record).__name__}")
                return
            yield self.to_item(line, record)
            return
        found = False
        for sub in walk_records(record, self.steps):
            found = True
            yield self._dead_end(line) if sub is DEAD_END else self.to_item(line, sub)
        if not found:
            yield Item(line, None, "missing_field", f"record path {self.src.record_path!r} finds nothing")

    # -- files ---------------------------------------------------------------------------------
    def read_file(self, path: Path) -> Iterator[Item]:
        fmt = self.src.format if self.src.format != "auto" else detect_format(path)
        try:
            size = path.stat().st_size
            raw = open(path, "rb")
        except OSError as e:
            self.progress(0)
            yield Item(0, None, "unreadable_file", f"cannot open ({e.strerror or e})")
            return
        done = 0
        with raw:
            reader = {"jsonl": self._jsonl, "jsonl.zst": self._jsonl, "jsonl.gz": self._jsonl, "json": self._json,
                      "parquet": self._parquet, "csv": self._csv, "txt": self._txt}[fmt]
            last = 0
            line = 0
            try:
                # NOTE: inside the try: a read error at the file's first bytes (EIO on a network mount) is the
                # file's one unreadable_file, as it is for its readers, not a crash of the whole run.
                wide = wide_encoding_detail(raw, path) if fmt != "parquet" else None
                if wide is not None:
                    # NOTE: read as UTF-8, a UTF-16 file was one rejection per line, lines cut at the wrong bytes
                    # (51 for 50 records), and a UTF-16 CSV's header did not parse: every row said "no field 'text'".
                    yield Item(0, None, "invalid_utf8", wide)
                    self.progress(size)
                    return
                for item in reader(raw, fmt, path, size):
                    line = item.line or line
                    yield item
                    pos = raw.tell() if not raw.closed else size
                    if pos - last >= 1 << 20:
                        self.progress(pos - last)
                        done += pos - last
                        last = pos
            except (OSError, EOFError, ValueError, zlib.error) as e:  # zstd/gzip/parquet corruption, truncated files
                # NOTE: the records read before the error are kept; the rest of the file is one rejection.
                yield Item(line, None, "unreadable_file", f"read error after line/record {line}: {e}")
        self.progress(size - done)

    def _jsonl(self, raw, fmt: str, path: Path, size: int) -> Iterator[Item]:
        yield from self._jsonl_lines(jsonl_byte_lines(raw, fmt, self.cfg.max_line_bytes))

    def _jsonl_lines(self, lines: Iterator[bytes | LongLine]) -> Iterator[Item]:
        for lineno, line in enumerate(lines, 1):
            if isinstance(line, LongLine):
                yield Item(lineno, None, "too_large",
                           f"line of {line.size:,} bytes > max_line_bytes ({self.cfg.max_line_bytes:,})")
                continue
            if not line.strip():
                continue  # a blank line is not a record
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield Item(lineno, None, "invalid_utf8", str(e))
                continue
            try:
                record = json_loads(text)
            except (json.JSONDecodeError, RecursionError) as e:
                yield Item(lineno, None, "malformed_json", _json_error(e))
                continue
            yield from self.records_to_items(lineno, record)

    def _json(self, raw, fmt: str, path: Path, size: int) -> Iterator[Item]:
        max_line, max_file = self.cfg.max_line_bytes, self.cfg.max_json_file_bytes
        compression = _compression(raw)
        # JSONL named .json: its first line is an object and more follows, which is never one JSON document
        # (json.loads says "Extra data"). Such a file is streamed, neither loaded whole nor bound by max_file.
        blocks = _blocks(raw, compression)
        head = next(blocks, b"")
        doc, single = None, False
        if head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"{"):
            lines = (ln for ln in _skip_bom(_lines(itertools.chain([head], blocks), max_line))
                     if isinstance(ln, LongLine) or ln.strip())
            first = _object_line(next(lines, None))
            # JSONL whose first line is bad (malformed, not UTF-8, too long): most of the head's complete
            # lines are objects. Read whole instead, it took ~3x its decompressed size, and over
            # max_json_file_bytes every record was one rejection.
            cut = head.rfind(b"\n")
            jsonl = first is None and cut > 0 and _looks_like_jsonl(head[:cut].decode("utf-8-sig", "surrogateescape"))
            if jsonl or (first is not None and next(lines, None) is not None):
                raw.seek(0)
                yield from self._jsonl_lines(_skip_bom(_lines(_blocks(raw, compression), max_line)))
                return
            if first is not None:
                doc, single = first, True  # the whole document is that one line, already parsed
        del head, blocks
        if not single:
            raw.seek(0)
            if not compression and size > max_file:
                yield Item(0, None, "too_large", f"JSON file of {size:,} bytes > max_json_file_bytes (use JSONL)")
                return
            data = raw.read() if not compression else _read_at_most(_blocks(raw, compression), max_file)
            if data is None:
                yield Item(0, None, "too_large",
                           f"JSON document over {max_file:,} bytes decompressed > max_json_file_bytes (use JSONL)")
                return
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                # JSONL with a bad byte on its first line (a bad byte elsewhere was streamed above)
                if _looks_like_jsonl(data.decode("utf-8-sig", "surrogateescape")):
                    yield from self._jsonl_lines(_skip_bom(_lines(iter([bytes(data)]), max_line)))
                    return
                yield Item(0, None, "invalid_utf8", f"the JSON file is not UTF-8 ({e})")
                return
            try:
                doc = json_loads(text)
            except (json.JSONDecodeError, RecursionError) as e:
                extra = isinstance(e, json.JSONDecodeError) and e.msg == "Extra data"
                if extra or _looks_like_jsonl(text):  # JSONL named .json, its first line bad
                    yield from self._jsonl_lines(_skip_bom(_lines(iter([bytes(data)]), max_line)))
                    return
                lineno = e.lineno if isinstance(e, json.JSONDecodeError) else 0
                yield Item(lineno, None, "malformed_json", f"the JSON file does not parse: {_json_error(e)}")
                return
            del data, text
        if self.steps is not None:
            records: Any = walk_records(doc, self.steps)
        elif isinstance(doc, list):
            records = doc
        else:
            records = [doc]
        found = False
        for i, record in enumerate(records, 1):
            found = True
            if record is DEAD_END:
                yield self._dead_end(i)
            elif self.steps is None and not isinstance(record, dict):
                yield Item(i, None, "not_an_object", f"record is a JSON {type(record).__name__}")
            else:
                yield self.to_item(i, record)
        if not found and self.steps is not None:
            yield Item(0, None, "missing_field", f"record path {self.src.record_path!r} finds nothing")

    def _parquet(self, raw, fmt: str, path: Path, size: int) -> Iterator[Item]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(raw)
        except (pa.ArrowException, OSError) as e:
            yield Item(0, None, "unreadable_file", f"not a readable parquet file ({e})")
            return
        # NOTE: a source reads the columns it uses alone (a text source its text column, a chat source its
        # layout's fields): converting every column of every row to Python (to_pylist) was 6x slower and held
        # 5x the memory on a file with an unused 3 KB binary column (a chat source turned every image of a
        # multimodal file into bytes), and a value no field needed (a date past year 9999) rejected its row.
        # A field's top column, and a column named with the dots (`meta.body`, as flattened data names them);
        # under a record_path, the column of its first step. None there: each row is missing_field, as before.
        wanted = self._columns_read() if self.steps is None else {self.steps[0]}
        names = pf.schema_arrow.names
        # NOTE: a column name twice (pandas and Arrow write that) was read as the last of them, without a word; a CSV
        # header says so, and so does this (the file's one unreadable_file).
        dup = next((c for c in sorted(wanted) if names.count(c) > 1), None)
        if dup is not None:
            yield Item(0, None, "unreadable_file", f"parquet schema: column {dup!r} appears {names.count(dup)} times, "
                                                   f"so which one to read is ambiguous; rename one")
            return
        columns = list(dict.fromkeys(c for c in names if c in wanted))
        i = 0
        batches = pf.iter_batches(batch_size=_parquet_batch_rows(pf, columns), columns=columns)
        while True:
            try:
                batch = next(batches, None)
            except pa.ArrowException as e:  # (ArrowNotImplementedError is no OSError/ValueError)
                raise OSError(str(e)) from e
            if batch is None:
                return
            try:
                records = batch.to_pylist()
            except (pa.ArrowException, ArithmeticError, ValueError):
                records = None
            if records is not None:
                for record in records:
                    i += 1
                    yield from self.records_to_items(i, record)
                continue
            for j in range(batch.num_rows):  # a value does not convert: one row at a time, the bad ones rejected
                i += 1
                row = batch.slice(j, 1)
                try:
                    record = row.to_pylist()[0]
                except (pa.ArrowException, ArithmeticError, ValueError) as e:
                    yield Item(i, None, "bad_field_type", f"column {_bad_column(row)!r}: a value does not convert "
                                                          f"to Python ({e})")
                    continue
                yield from self.records_to_items(i, record)

    def _text_stream(self, raw) -> io.TextIOWrapper:
        # NOTE: surrogateescape keeps invalid bytes as lone surrogates so that one bad byte rejects
        # one row/line (found by `_bad_utf8`) instead of aborting the whole file.
        return io.TextIOWrapper(_decompressed(raw), encoding="utf-8-sig", errors="surrogateescape", newline="")

    def _csv(self, raw, fmt: str, path: Path, size: int) -> Iterator[Item]:
        tsv = str(path).lower().endswith((".tsv", ".tsv.gz", ".tsv.zst"))
        delim = "\t" if tsv and self.src.csv_delimiter == "," else self.src.csv_delimiter
        stream = self._text_stream(raw)
        quoting = self.src.csv_quoting
        if quoting == "auto" and tsv:
            # NOTE: TSV as most datasets write it has no quoting (a quote is text); a TSV written by
            # csv.writer or pandas quotes cells holding a quote, tab or newline ('"a ""b"""'): read without
            # quoting, those kept their quotes and a multi-line cell was cut into rows. Told from the head.
            head = stream.read(_TSV_SNIFF_CHARS)
            head += stream.readline() if head else ""
            quoting = "minimal" if _csv_quoted(head, delim) else "none"
            stream = itertools.chain(io.StringIO(head, newline=""), stream)
        elif quoting == "auto":
            quoting = "minimal"
        # NOTE: a cell over csv's limit (default 131,072 characters) was a csv.Error that killed the run.
        # The limit (process-wide, set from this config alone so the result never depends on what ran
        # before, never below the default) is what a document may hold; a bigger cell, or an unclosed quote
        # swallowing lines past it, is one `too_large` rejection.
        csv.field_size_limit(max(131_072, self.cfg.max_doc_chars + 1))
        lines = _RowLines(stream)

        def parser():
            # NOTE: strict makes a stray quote an error, not a silent merge: text after a closing quote
            # ('"a" b,1') and a quote still open at the end of the file (which took all the rest of the file
            # as one cell). QUOTE_NONE (TSV as most datasets write it): a quote is text.
            return csv.reader(lines, delimiter=delim, strict=True,
                              quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL)

        rows, header = parser(), None
        while True:
            first = lines.start_row()
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as e:
                if header is None:
                    raise ValueError(f"csv header (line {first}): {e}") from e  # -> one unreadable_file
                if "field larger than field limit" in str(e):
                    # A cell over the limit is a real one more often than a stray quote: its lines are not
                    # read again as rows (each was kept as a document); the rest of the cell is skipped,
                    # held nowhere, to the line where its quote closes.
                    last, closed = lines.skip_open_quote(quoting != "none")
                    rest = "" if closed else "; the quote is not closed by the end of the file, which is not read further"
                    yield Item(first, None, "too_large", f"a cell over max_doc_chars ({self.cfg.max_doc_chars:,}) "
                               f"in the row of lines {first}-{last}{rest}")
                    if not closed:
                        return
                    rows = parser()
                    continue
                # The row is rejected at its first line; the lines it took after that are read again as rows
                # (a stray quote swallowed them), so every physical row is counted.
                yield self._csv_error(first, lines.next - 1, e)
                lines.again_from(first + 1)
                rows = parser()
                continue
            if not row:
                continue  # a blank line is not a record
            if header is None:
                header = row
                dup = next((c for c in self._columns_read() if header.count(c) > 1), None)
                if dup is not None:  # -> one unreadable_file. NOTE: a row's dict kept the last: a silent choice
                    raise ValueError(f"csv header (line {first}): column {dup!r} appears {header.count(dup)} times, "
                                     "so which one to read is ambiguous; rename one")
                continue
            if any(_bad_utf8(v) for v in row):
                yield Item(first, None, "invalid_utf8", "row has bytes that are not UTF-8")
            elif len(row) > len(header):
                yield Item(first, None, "malformed_csv", f"{len(row) - len(header)} cells beyond the header's columns")
            elif len(row) < len(header):
                yield Item(first, None, "malformed_csv", f"{len(row)} cells, the header has {len(header)}")
            else:
                yield self.to_item(first, dict(zip(header, row)))

    def _columns_read(self) -> set[str]:
        """The top-level fields this source reads from a record (CSV and parquet columns)."""
        src = self.src
        if src.kind == "text":
            return {src.text_field.split(".")[0], src.text_field}  # (a column `meta.body` is read by that name)
        from steel.data.chat import LAYOUT_FIELDS

        named = {**LAYOUT_FIELDS[src.chat_layout or "alpaca"], **src.fields}
        return {c for k, v in named.items() if k not in ("role", "content") for c in (v.split(".")[0], v)}  # (turns)

    def _csv_error(self, first: int, last: int, e: csv.Error) -> Item:
        again = f"; lines {first + 1}-{last} are read again as rows" if last > first else ""
        if "unexpected end of data" in str(e):
            return Item(first, None, "malformed_csv", f"a quote opened on line {first} is not closed by the end "
                        f"of the file{again}")
        return Item(first, None, "malformed_csv", f"{e} (on line {last}){again}")

    def _txt(self, raw, fmt: str, path: Path, size: int) -> Iterator[Item]:
        unit = self.src.txt_unit
        if unit == "file":
            data = _decompressed(raw).read(4 * self.cfg.max_doc_chars + 1)  # never more than that is held
            if len(data) > 4 * self.cfg.max_doc_chars:
                yield Item(1, None, "too_large", f"text file of {len(data):,} bytes")
                return
            try:
                yield Item(1, data.decode("utf-8-sig"))
            except UnicodeDecodeError as e:
                yield Item(1, None, "invalid_utf8", str(e))
            return
        # NOTE: lines come from `_text_lines`, which holds at most max_doc_chars of a line, and a paragraph
        # is dropped once it is longer: iterating the stream held a whole line, and a paragraph was held whole
        # (a 551 MB file without a blank line took 1.5 GB, for one document rejected as too_large after).
        limit = self.cfg.max_doc_chars
        buf: list[str] = []
        held = 0  # characters in buf
        first, long = 0, False  # the paragraph's first line; whether it is over the limit (buf then dropped)
        for lineno, line in enumerate(_text_lines(self._text_stream(raw), limit), 1):
            blank = line.blank if isinstance(line, LongText) else not line.strip()
            if unit == "line":
                if isinstance(line, LongText) and not blank:
                    yield Item(lineno, None, "too_large", f"a line of {line.size:,} characters > max_doc_chars")
                elif not blank:
                    yield self._txt_item(lineno, line.rstrip("\r\n"))
                continue
            if not blank:
                if not buf and not long:
                    first = lineno
                # + 2: the last line's end ("\r\n" at most) is not part of the document
                if long or isinstance(line, LongText) or held + len(line) > limit + 2:
                    buf, held, long = [], 0, True
                else:
                    buf.append(line)
                    held += len(line)
            elif buf or long:
                yield self._paragraph(first, lineno - 1, buf, long)
                buf, held, long = [], 0, False
        if buf or long:
            yield self._paragraph(first, lineno, buf, long)

    def _paragraph(self, first: int, last: int, buf: list[str], long: bool) -> Item:
        if long:
            return Item(first, None, "too_large", f"the paragraph of lines {first}-{last} is over max_doc_chars "
                        f"({self.cfg.max_doc_chars:,} characters)")
        return self._txt_item(first, "".join(buf).rstrip("\r\n"))

    @staticmethod
    def _txt_item(line: int, text: str) -> Item:
        if _bad_utf8(text):
            return Item(line, None, "invalid_utf8", "bytes that are not UTF-8")
        return Item(line, text)


PARQUET_BATCH_ROWS = 1024  # rows converted to Python at once, at most
PARQUET_BATCH_BYTES = 32 << 20  # and about this many bytes of the columns read (row groups' uncompressed sizes)


def _parquet_batch_rows(pf, columns: list[str]) -> int:
    """Rows per batch: PARQUET_BATCH_ROWS, fewer where rows of the columns read are large (the widest row group's
    uncompressed bytes of those columns per row), so that a batch holds about PARQUET_BATCH_BYTES.

    NOTE: 1024 rows of 1 MB documents made a 1 GB Arrow batch and ~0.7 GB of Python strings at once (5.6 GB peak
    RSS reading a file of 2048 such rows; 0.2 GB in 32-row batches where the writer's row groups are 256 rows).
    Arrow still decodes a row group's column chunk whole: a writer's 1 GB row group is 1 GB whatever the batch."""
    md = pf.metadata
    leaves: list[int] = []
    k = 0
    for f in pf.schema_arrow:  # a top-level column's leaf columns in the file, in order
        n = _leaf_count(f.type)
        if f.name in columns:
            leaves += range(k, k + n)
        k += n
    if k != md.num_columns:  # a schema not mapped to the file's leaves: every column (smaller batches, never larger)
        leaves = list(range(md.num_columns))
    widest = 0.0
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        if rg.num_rows:
            widest = max(widest, sum(rg.column(c).total_uncompressed_size for c in leaves) / rg.num_rows)
    return max(1, min(PARQUET_BATCH_ROWS, int(PARQUET_BATCH_BYTES / widest))) if widest else PARQUET_BATCH_ROWS


def _leaf_count(t) -> int:
    """The parquet leaf columns of an Arrow type."""
    import pyarrow as pa

    if isinstance(t, pa.ExtensionType):
        return _leaf_count(t.storage_type)
    if pa.types.is_struct(t):
        return sum(_leaf_count(t.field(j).type) for j in range(t.num_fields))
    if pa.types.is_map(t):
        return _leaf_count(t.key_type) + _leaf_count(t.item_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _leaf_count(t.value_type)
    return 1


@dataclass(frozen=True, slots=True)
class LongText:
    """What `_text_lines` gives for a line over its limit, which it did not keep."""

    size: int  # characters before the line's end
    blank: bool  # whitespace only


def _text_lines(stream, limit: int) -> Iterator[str | LongText]:
    """The lines of a text stream opened with newline="", their ends kept, as iterating the stream gives
    them ("\n", "\r" or "\r\n" ends a line); a line of more than `limit` characters (its end not counted)
    is a `LongText`, whose pieces are never held together: memory stays within about `limit`."""
    cap = limit + 2  # what readline may return at once: a line within the limit, and its end
    parts: list[str] = []  # the current line's pieces so far (dropped once over the limit)
    held, blank = 0, True  # the current line's characters so far, kept or not; whether all are spaces
    ahead: str | None = None
    while True:
        piece = ahead if ahead is not None else stream.readline(cap)
        ahead = None
        if not piece:
            break
        if len(piece) == cap and piece.endswith("\r"):  # the cap may have cut a "\r\n" in two
            ahead = stream.readline(cap)
            if ahead.startswith("\n"):  # (then it is "\n" alone: a "\n" ends a line)
                piece, ahead = piece + "\n", None
        end = 2 if piece.endswith("\r\n") else 1 if piece.endswith(("\n", "\r")) else 0
        if not end or parts or held:
            held += len(piece)
            blank = blank and piece.isspace()
            if held <= cap:
                parts.append(piece)
            else:
                parts = []
            if not end:
                continue
            piece, size = ("".join(parts) if parts else ""), held - end
        else:  # a whole line at once (nearly always)
            size = len(piece) - end
            blank = size > limit and piece.isspace()
        yield LongText(size, blank) if size > limit else piece
        parts, held, blank = [], 0, True
    if held:
        yield LongText(held, blank) if held > limit else "".join(parts)


@dataclass(frozen=True, slots=True)
class LongLine:
    """What `jsonl_byte_lines(..., max_line)` gives for a line over `max_line` bytes, which it did not keep."""

    size: int  # bytes before the newline


def jsonl_byte_lines(raw, fmt: str, max_line: int | None = None) -> Iterator[bytes | LongLine]:
    """Lines (bytes, without their newline) of an open, seekable binary file of format jsonl, jsonl.zst or
    jsonl.gz (jsonl: plain, gzip or zstd, told by the magic number).

    With `max_line`, a line longer than that (a "\r" before its newline not counted) is a `LongLine`:
    its bytes are counted, never held, so memory stays within max_line plus a block.
    A truncated or corrupt compressed file raises OSError/EOFError/zlib.error after its readable
    lines; `steel tokenizer train` reads with this too, so both commands see the same lines.
    A UTF-8 byte order mark at the start of the (decompressed) file is dropped, as for CSV/JSON/txt.
    """
    compression = {"jsonl.zst": "zst", "jsonl.gz": "gz", "jsonl": ""}.get(fmt)
    if compression is None:
        raise ValueError(f"not a JSONL format: {fmt}")
    # NOTE: `jsonl` reads a gzip or zstd file too, told by its magic number (a JSON text never opens with one),
    # as csv/txt/json do: `format: jsonl` on .jsonl.zst files read the compressed bytes as lines (every line
    # one invalid_utf8/malformed_json rejection, nothing kept). A file that jsonl.zst/.gz names compressed
    # and is not stays a read error (a corrupt download).
    return _skip_bom(_lines(_blocks(raw, compression or _compression(raw)), max_line))


_WIDE_BOMS = [(codecs.BOM_UTF32_LE, "UTF-32-LE"), (codecs.BOM_UTF32_BE, "UTF-32-BE"),  # UTF-32-LE's opens as UTF-16-LE's
              (codecs.BOM_UTF16_LE, "UTF-16-LE"), (codecs.BOM_UTF16_BE, "UTF-16-BE")]


WIDE_DETAIL = "the file is "  # how the rejection of a UTF-16/32 file opens, then its encoding (`wide_encoding_of`)
_WIDE_HEAD = 4096  # bytes looked at to tell UTF-16 without a byte order mark


def wide_encoding_of(detail: str) -> str | None:
    """"UTF-16-LE" etc. when an `invalid_utf8` rejection's detail is that of a UTF-16/32 file, else None."""
    m = re.match(re.escape(WIDE_DETAIL) + r"(UTF-(?:16|32)-[LB]E) \(", detail)
    return m.group(1) if m else None


def wide_pipeline_of(detail: str) -> tuple[str, str] | None:
    """(the decompressor, the new file's name) of the command a compressed UTF-16/32 file's rejection tells
    (`wide_encoding_detail`): ("zstd", "NEW.jsonl.zst"); None for a plain file's."""
    m = re.search(r"`(zstd|gzip) -dc .* \| iconv -f \S+ -t UTF-8 \| \1 > (.+)`$", detail)
    return (m.group(1), m.group(2)) if m else None


def iconv_name(wide: str) -> str:
    """"UTF-16-LE" -> "UTF-16LE", as iconv names it (its "UTF-16" without a byte order mark is big-endian)."""
    return wide.replace("-LE", "LE").replace("-BE", "BE")


def wide_encoding_detail(raw, path: str | Path) -> str | None:
    """What to tell of a (decompressed) file in UTF-16/32 (`_wide_encoding`) at `path`: its encoding and the
    iconv command that converts it; None for other files. The file is left at its start. `steel tokenizer train`
    tells the same."""
    wide, bom = _wide_encoding(raw)
    if wide is None:
        return None
    told = "it opens with that byte order mark" if bom else "no byte order mark, told by its first bytes"
    iconv = convert_command(f"iconv -f {iconv_name(wide) if not bom else wide[:6]} -t UTF-8", path, _compression(raw))
    return f"{WIDE_DETAIL}{wide} ({told}), not UTF-8; convert it, e.g. `{iconv}`"


def convert_command(iconv: str, path: str | Path, compression: str, shown: str | None = None) -> str:
    """The command that converts the file at `path` with `iconv` ("iconv -f UTF-16LE -t UTF-8"): iconv alone for a
    plain file, through the decompressor and back for a compressed one (`compression` "gz" or "zst"), naming the
    file `shown` (default: its path, quoted for the shell)."""
    if not compression:
        return iconv
    # NOTE: iconv on the file itself converts its compressed bytes: garbage. It goes through the decompressor,
    # and the text back through the compressor (a .jsonl.zst source keeps its format).
    tool = {"zst": "zstd", "gz": "gzip"}[compression]
    # NOTE: the new file keeps the old name's ending, which `detect_format` tells the format by: a DATA.CSV.GZ
    # (the suffix in capitals) was told `> NEW.gz`, and a gzip file named data.csv `> NEW.gz`: both read as JSONL,
    # every row malformed_json.
    suffixes = Path(path).suffixes
    ext = "".join(suffixes[-2:] if suffixes[-1:] and suffixes[-1].lower() in (".gz", ".zst") else suffixes[-1:])
    new = shlex.quote(f"NEW{ext or f'.{compression}'}")
    return f"{tool} -dc {shown or shlex.quote(str(path))} | {iconv} | {tool} > {new}"


def compression_by_name(name: str) -> str:
    """"gz", "zst" or "" as the file name's last suffix says (where the file is not at hand to read its magic)."""
    return {".gz": "gz", ".zst": "zst"}.get(Path(name).suffix.lower(), "")


def compression_of(path: str | Path) -> str:
    """"gz", "zst" or "" as the file at `path` is, told by its magic number as its reader tells it; by its name's last
    suffix where it cannot be read (`compression_by_name`)."""
    try:
        with open(path, "rb") as f:
            return _compression(f)
    except OSError:
        return compression_by_name(str(path))


def _wide_encoding(raw) -> tuple[str | None, bool]:
    """("UTF-16-LE" etc., True) when the (decompressed) file opens with a UTF-16/32 byte order mark; (that, False)
    for UTF-16 without one (`_bomless_utf16`); else (None, False). The file is left at its start. A compressed
    file that does not decompress is left to its reader to report."""
    compression = _compression(raw)
    # NOTE: blocks up to 4 KB, not the first alone: a zstd file written by a streaming writer that flushes opens with
    # a frame of a few bytes, and a first block under 8 bytes was no UTF-16 (each line then one rejection).
    head = b""
    try:
        for block in _blocks(raw, compression) if compression else [raw.read(_WIDE_HEAD)]:
            head += block
            if len(head) >= _WIDE_HEAD:
                break
    except (OSError, EOFError, zlib.error):
        pass  # (what decompressed before the error is told; the reader reports the error)
    head = head[:_WIDE_HEAD]
    raw.seek(0)
    name = next((name for bom, name in _WIDE_BOMS if head.startswith(bom)), None)
    if name is not None:
        return name, True
    return _bomless_utf16(head), False


_ASCII_BYTE = bytes(int(0x09 <= b <= 0x7E) for b in range(256))  # 1 for a printable ASCII byte, tab, newline


def _texty(c: str) -> bool:
    """A character of text: ASCII, Latin, Greek, Cyrillic, punctuation, CJK radicals, CJK and its punctuation, kana,
    Hangul, full width.

    NOTE: CJK radicals (U+2E80-2FDF): text extracted from PDFs holds them for common ideographs (⼀ for 一, ⻋ for 车;
    shared/data's cmmlu high_school_physics.csv), and its BOM-less UTF-16 was not told (14 of 2,596 4 KB heads from
    random line starts of shared/data re-encoded, none now; 256-byte heads 30 -> 16 of 3,582)."""
    o = ord(c)
    return (0x20 <= o < 0x7F or c in "\t\n\r" or 0xA0 <= o < 0x250 or 0x370 <= o < 0x530 or 0x1100 <= o < 0x1200
            or 0x2000 <= o < 0x2070 or 0x2E80 <= o < 0x2FE0 or 0x3000 <= o < 0x3190 or 0x3400 <= o < 0xA000
            or 0xAC00 <= o < 0xD7A4 or 0xFF00 <= o < 0xFFF0)


_LOW_BYTE = bytes(int(b <= 0x08) for b in range(256))  # 1 for a NUL or a control byte below tab: never in UTF-8 text
_LEGACY = ("utf-8", "cp932", "cp949", "gbk", "big5")  # UTF-8, Shift-JIS, EUC-KR (UHC), GBK, Big5


def _legacy(head: bytes) -> bool:
    """True when the bytes are UTF-8 or text in a legacy East Asian two-byte encoding, but for a few bad bytes (a
    character cut at the start, one broken by a stray byte); a character cut at the end of the head is no bad byte."""
    allowed = min(6, len(head) // 64)
    # NOTE: an incremental decoder holds back a character cut at the end: counted, it was the one bad byte a head
    # under 64 bytes may not have, and GBK/Shift-JIS text of a tiny file with a stray NUL was taken for UTF-16.
    return any(codecs.getincrementaldecoder(enc)("replace").decode(head).count("\ufffd") <= allowed
               for enc in _LEGACY)


def _bomless_utf16(head: bytes) -> str | None:
    """"UTF-16-LE"/"UTF-16-BE" when the first bytes of a file are UTF-16 text without a byte order mark, else None.

    NOTE: such a file (Windows' "Unicode" without a BOM, an export of SQL Server or .NET) read as UTF-8 was a
    rejection per line, `malformed_json` (ASCII: a NUL every other byte) or `invalid_utf8`, and the summary told to
    convert from GB18030. Told apart: valid UTF-8 (ASCII or Russian as UTF-16 is) is UTF-16 only with a byte 0-8
    (the high byte of U+0000-08FF) in at least a quarter of the code units, all on one side; bytes that are not UTF-8 are UTF-16 when they decode in one byte
    order to text (GBK mostly does not: its pairs fall on surrogates, private use and Hangul) whose high bytes hold a
    NUL (an ASCII character, a newline; text in another encoding: none) and are mostly beside an ASCII byte, the order
    with more tried first, and do not decode as UTF-8 or an East Asian two-byte encoding but for a few bytes
    (`_legacy`)."""
    head = head[: len(head) & ~1]
    if len(head) < 8:
        return None
    try:
        head.decode("utf-8")
        valid = True
    except UnicodeDecodeError as e:
        valid = e.reason == "unexpected end of data"  # (a character cut at the end of the head)
    units = len(head) // 2
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if valid:
        # NOTE: the high byte of U+0000-08FF (Latin, Greek, Cyrillic, Hebrew, Arabic) is 0-8, a byte UTF-8 text never
        # holds (tab is 9): Russian in UTF-16 is valid UTF-8 with a NUL only for a space or a digit, and was read line
        # by line, each line a rejection (or, as .txt, kept as text with a control byte every other character).
        low_even, low_odd = sum(head[0::2].translate(_LOW_BYTE)), sum(head[1::2].translate(_LOW_BYTE))
        if low_odd * 4 >= units and low_even * 8 <= low_odd and odd:
            return "UTF-16-LE"
        if low_even * 4 >= units and low_odd * 8 <= low_even and even:
            return "UTF-16-BE"
        return None
    # NOTE: two ASCII bytes decode to CJK (or to U+2000-206F for a space first) in either byte order, so 8-bit text
    # (English in Latin-1/cp1252, any text cut inside a UTF-8 character) passed the test below with one NUL byte in
    # its first 4 KB: the whole file was one rejection. In UTF-16 an ASCII character is a NUL and a byte, and a Chinese
    # one is a pair of two printable ASCII bytes ~1 time in 4 (at most 0.44 of a 4 KB head of the Chinese corpora in
    # shared/data); in 8-bit English text nearly every pair is (0.9 and more there).
    ascii_pairs = head.translate(_ASCII_BYTE)
    if sum(itertools.compress(ascii_pairs[1::2], ascii_pairs[0::2])) > 0.6 * units:
        return None
    # NOTE: the order was the one whose high bytes hold more NULs, alone: a Chinese character whose low byte is 0 (一,
    # U+4E00) puts a NUL on the other side, and prose with more of them than ASCII characters in its first 4 KB (a
    # novel's long paragraphs: 44 of 1156 heads of shared/data's Chinese corpora) was read line by line, each line
    # a rejection, the summary telling to convert from GB18030. The order with more NULs is still tried first: ASCII
    # pairs decode to CJK in either order, so English text would pass in both.
    # NOTE: a Shift-JIS character whose first byte is 0x81-0x9F reads as CJK (U+8140-9FFC) in UTF-16-BE (and EUC-KR,
    # GBK, Big5 and UTF-8 two-byte ones as Hangul): a Japanese file with one stray NUL byte in its first 4 KB was
    # taken for UTF-16 and refused whole. Text with a stray NUL decodes in its encoding but for a few bytes (a NUL
    # breaking a character, a character cut at either end); UTF-16 with NULs in under 1/16 of its code units does
    # not. Measured on heads of shared/data's Chinese and English and of Japanese, Korean, Russian and Greek text:
    # of 4 KB heads none missed and no stray-NUL head taken (Shift-JIS ones were, 12 of 1,600); of 256-byte heads
    # (tiny files) no stray-NUL head taken (125 were) and 5 more of 1,200 Chinese UTF-16 ones missed (as before: read
    # line by line).
    if max(even, odd) * 16 < units and _legacy(head):
        return None
    for name, codec, high in sorted((("UTF-16-LE", "utf-16-le", odd), ("UTF-16-BE", "utf-16-be", even)),
                                    key=lambda order: -order[2]):
        if not high:  # (ASCII pairs of a Latin-1 or GBK file decode to CJK too: it holds no NUL byte)
            continue
        try:
            text = head.decode(codec)
        except UnicodeDecodeError as e:
            if e.start < len(head) - 2:  # (a surrogate pair cut at the end of the head is no error)
                continue
            text = head[: e.start].decode(codec)
        # NOTE: in UTF-16 a unit whose high byte is NUL is mostly an ASCII character (a space, a digit, a newline); a
        # stray NUL in two-byte text pairs with a byte 0x80-0xFF (U+0080-00FF), the rest of the text reading as
        # Hangul, counted as text since 05a6480: 1-3% of GBK heads under 128 bytes with a stray NUL were taken for
        # UTF-16 (told to convert with `iconv -f UTF-16BE`, which garbles them). Measured on 3,000 heads of 32-128
        # bytes each with 1-2 stray NULs: GBK/GB18030/Big5/EUC-KR none taken, Shift-JIS 8 (145 at f660fbc, 110 at
        # 05a6480); 4 KB heads of Chinese, English, Korean and Russian UTF-16 all still told.
        # NOTE: or at least 4 ASCII characters: Chinese text writes a foreign name with U+00B7 (安娜·卡列尼娜), and
        # a translated novel with a name a line (LF ends) was no longer told (read as UTF-8, each line rejected, a
        # GB18030 hint). Four stray NULs each beside an ASCII byte: no more heads taken of 15,000 legacy heads of
        # 32 B-4 KB with 1-6 stray NULs (the same 43 as with the majority alone, all under 130 bytes).
        latin = [c for c in text if c < "\u0100"]
        ascii_units = sum("\t" <= c <= "~" for c in latin)
        if (text and sum(map(_texty, text)) >= 0.9 * len(text) and "\0" not in text
                and (2 * ascii_units > len(latin) or ascii_units >= 4)):
            return name
    return None


def _compression(raw) -> str:
    """"gz", "zst" or "" (plain), told by the magic number at the start of the file, which is left there.

    NOTE: a zstd file may open with a skippable frame (magic 0x184D2A50-5F, little-endian): `pzstd` writes one
    before every frame. Told plain, such a .json.zst/.csv.zst/.txt.zst (or any file under `format: jsonl`) was
    read as its compressed bytes: every record rejected, a CSV's rows as `missing_field`."""
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        return "gz"
    skippable = len(magic) == 4 and magic[1:] == b"\x2a\x4d\x18" and magic[0] & 0xF0 == 0x50
    return "zst" if magic == _ZSTD_MAGIC or skippable else ""


class _BlockReader(io.RawIOBase):
    """A readable binary stream over an iterator of byte blocks (a decompressed file, for the text formats)."""

    def __init__(self, blocks: Iterator[bytes]):
        self._blocks, self._block, self._pos = blocks, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._pos >= len(self._block):
            self._block, self._pos = next(self._blocks, b""), 0
            if not self._block:
                return 0
        n = min(len(b), len(self._block) - self._pos)
        b[:n] = memoryview(self._block)[self._pos : self._pos + n]
        self._pos += n
        return n


def _decompressed(raw):
    """`raw` itself when plain, else a buffered stream of its decompressed bytes (gzip or zstd, told by the
    magic number, so `format: csv` on any file name works too); corruption surfaces as a read error."""
    compression = _compression(raw)
    return io.BufferedReader(_BlockReader(_blocks(raw, compression)), _BLOCK) if compression else raw


def _blocks(raw, compression: str) -> Iterator[bytes]:
    """The (decompressed) bytes of an open binary file, a block at a time."""
    if compression == "zst":
        return _zstd_chunks(raw)
    if compression == "gz":
        # NOTE: read1, not read: GzipFile.read(n) raises on a truncated stream and drops what it had
        # decompressed in that call (up to a block of good lines before the cut were lost).
        stream = gzip.GzipFile(fileobj=raw)
        return iter(lambda: stream.read1(_BLOCK), b"")
    return iter(lambda: raw.read(_BLOCK), b"")


def decompressed_head(raw, limit: int) -> bytes:
    """The first `limit` bytes of an open binary file once decompressed (gzip or zstd, told by the magic number; a
    plain file's own bytes), all of them when it holds fewer; of a corrupt or cut stream, what decompressed before
    the fault (a prefix of the text all the same: the reader keeps the records before it too)."""
    compression = _compression(raw)
    if not compression:
        return raw.read(limit)
    head = bytearray()
    try:
        # NOTE: small reads: `_blocks` reads (and decompresses) a MiB at a time, 16 times what 64 KB of head needs
        if compression == "zst":
            blocks = _zstd_chunks(raw, 1 << 14)
        else:
            stream = gzip.GzipFile(fileobj=raw)
            blocks = iter(lambda: stream.read1(1 << 14), b"")
        for block in blocks:
            head += block
            if len(head) >= limit:
                break
    except (OSError, EOFError, zlib.error):
        pass
    return bytes(head[:limit])


def input_head(path: str | Path, limit: int) -> tuple[str, int] | None:
    """(digest, length) of the first `limit` bytes of a file's text (`comparable_head`): a 64-bit BLAKE2b in hex, and
    how many bytes it covers (fewer than `limit` for a smaller file); None for a file that cannot be opened or holds
    nothing."""
    try:
        with open(path, "rb") as f:
            head = comparable_head(f, limit)
    except OSError:
        return None
    return (hashlib.blake2b(head, digest_size=8).hexdigest(), len(head)) if head else None


_PARQUET_MAGIC = b"PAR1"


def comparable_head(raw, limit: int) -> bytes:
    """The first `limit` bytes of what an open binary file holds, in a form whose start stays the same when records
    are added at the end: what the manifest's `input_heads` digest, for the loader to tell a file grown since.

    Its bytes once decompressed (`decompressed_head`), but for two kinds of file:
    - a parquet file (told by its magic number): its rows as JSON lines (`_parquet_rows_head`). NOTE: a parquet file
      rewritten with rows added has other bytes from its first page on (its pages are encoded anew, its footer is at
      the end), and two unrelated ones open alike (PAR1, a similar first page): its bytes tell neither way.
    - a JSON document (one value, all of it within `limit`): its bytes to the closing brackets after its last record
      (`_json_open_end`). NOTE: a record added inside its array puts a comma where the `]` was, so a small JSON file
      that grew (`[{...}, {...}]` -> `[{...}, {...}, {...}]`) had another head and was taken for new data.
    The file is left at its start."""
    magic = raw.read(4)
    raw.seek(0)
    if magic == _PARQUET_MAGIC:
        rows = _parquet_rows_head(raw, limit)
        raw.seek(0)
        if rows is not None:
            return rows
    head = decompressed_head(raw, limit + 1)  # (one byte more: is it all of the file?)
    raw.seek(0)
    if len(head) > limit:
        return head[:limit]
    return _json_open_end(head)


def _json_open_end(text: bytes) -> bytes:
    """`text` (all of a file) up to the closing brackets that follow its last record when it is one JSON document
    whose end closes an array (`[{...}]`, `{"data": [{...}]}` -> `[{...}`, `{"data": [{...}`: what a file with records
    added to that array starts with); else `text`."""
    stripped = text.removeprefix(codecs.BOM_UTF8).lstrip()
    if stripped[:1] not in (b"[", b"{"):
        return text
    try:
        json.loads(stripped)
    except (ValueError, RecursionError):  # (JSON Lines, or no JSON: as read)
        return text
    end = len(text)
    while end and text[end - 1] in b" \t\r\n]}":
        end -= 1
    first = text.find(b"]", end)  # the innermost array's close: records are added before it
    # (and before the spaces ahead of it: pretty-printed, a record added puts a comma after the last one's `}`)
    return text[:first].rstrip() if first >= 0 else text


def _parquet_rows_head(raw, limit: int) -> bytes | None:
    """The first `limit` bytes of a parquet file's rows, one JSON object a line, in its columns' order (a binary value
    as its length and digest); None where it does not read or a value does not convert (its bytes then stand)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = bytearray()
    try:
        # NOTE: buffer_size: a column chunk is read a page at a time, not whole (a row group of images is ~100 MB);
        # pre_buffer off: on (pyarrow's default) it reads every column chunk of the row group first, whole
        batches = pq.ParquetFile(raw, buffer_size=1 << 20, pre_buffer=False).iter_batches(batch_size=16)
        for batch in batches:
            for row in batch.to_pylist():
                out += json.dumps(row, ensure_ascii=False, default=_json_value).encode("utf-8", "surrogatepass")
                out += b"\n"
                if len(out) >= limit:
                    return bytes(out[:limit])
    except (pa.ArrowException, OSError, ValueError, ArithmeticError):
        return None
    return bytes(out)


def _json_value(v: Any) -> str:
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes {hashlib.blake2b(v, digest_size=8).hexdigest()}>"
    return repr(v)  # (datetime, Decimal, ...)


def _read_at_most(blocks: Iterator[bytes], limit: int) -> bytearray | None:
    """All the bytes, or None (without reading further) once there are more than `limit`."""
    data = bytearray()
    for block in blocks:
        data += block
        if len(data) > limit:
            return None
    return data


def _skip_bom(lines: Iterator[bytes | LongLine]) -> Iterator[bytes | LongLine]:
    # NOTE: editors on Windows write a BOM; left in, the first record failed json.loads (malformed_json).
    first = next(lines, None)
    if first is None:
        return
    yield first.removeprefix(codecs.BOM_UTF8) if isinstance(first, bytes) else first
    yield from lines


ZSTD_MAX_WINDOW = 1 << 27  # the largest zstd window decoded (128 MiB: zstd's own default limit, window log 27)
_ZSTD_FEED = 1 << 14  # compressed bytes fed to the decompressor at once (`_zstd_chunks`)
_ZSTD_FEED_BLOCKS = 8  # the most zstd blocks that end in one feed: each decompresses to 128 KiB at most


class _ZstdWalk:
    """The frames and blocks of a zstd stream, walked on its compressed bytes as they come (RFC 8878 section 3.1):
    where each block ends, and the window each frame needs, before anything is decompressed.

    NOTE: a zstd block decompresses to at most 128 KiB, whatever its own size: an RLE block of 4 bytes gives all
    of it, so 16 KiB of a file of one repeated byte decompressed to ~500 MB in one call (zstandard's decompressobj
    has no bound on its output). `_zstd_chunks` cuts its feeds where `ends` says, at most `_ZSTD_FEED_BLOCKS` blocks
    a feed. A stream it cannot follow (not zstd from some byte on) is left to the decompressor to report."""

    def __init__(self, max_window: int):
        self.max_window = max_window
        self.pos = 0  # bytes of the stream walked
        self.state, self.need, self.held = "magic", 4, b""  # what comes next, its size, its bytes so far
        self.skip = 0  # bytes of the current block (or skippable frame) still to pass
        self.checksum = False  # the current frame ends with a 4-byte checksum
        self.lost = False
        self.refused: tuple[int, OSError] | None = None  # (where, why) of a frame refused for its window

    def ends(self, data: bytes) -> list[int]:
        """The offsets in `data` (the next bytes of the stream) just past the end of each block that ends there."""
        ends: list[int] = []
        i, n = 0, len(data)
        while i < n and not self.lost:
            if self.state == "block_header" and not self.held:
                # NOTE: the common case, blocks that are not a frame's last with their headers and bodies whole in
                # `data`, walked here without the general path's slices: a stream flushed a record at a time (blocks
                # of ~60 bytes) read at a third of 35b457d's speed through that path alone.
                while i + 3 <= n:
                    h = data[i] | data[i + 1] << 8 | data[i + 2] << 16
                    size = 1 if h & 6 == 2 else h >> 3  # (an RLE block's body is its one byte)
                    if h & 1 or h & 6 == 6 or i + 3 + size > n:  # last, reserved, or not all here: as below
                        break
                    i += 3 + size
                    if size:  # (an empty raw block ends nothing to decode)
                        ends.append(i)
                if i + 3 > n:
                    self.held = data[i:]
                    break
            if self.skip:
                step = min(self.skip, n - i)
                i, self.skip = i + step, self.skip - step
                if not self.skip and self.state == "block":
                    ends.append(i)
                    self.state, self.need = self.after_block, self.need_after
                continue
            take = min(self.need - len(self.held), n - i)
            self.held += data[i : i + take]
            i += take
            if len(self.held) == self.need:
                self._parsed(self.pos + i - self.need)
        self.pos += n
        return ends

    def _parsed(self, at: int) -> None:
        """Act on the complete header in `held`, which starts at byte `at` of the stream."""
        head, state = self.held, self.state
        self.held = b""
        if state == "magic":
            if head == b"\x28\xb5\x2f\xfd":
                self.state, self.need, self.held = "frame", 5, head
            elif head[0] & 0xF0 == 0x50 and head[1:] == b"\x2a\x4d\x18":
                self.state, self.need = "skippable", 4
            else:
                self.lost = True
        elif state == "skippable":
            self.state, self.need, self.skip = "magic", 4, int.from_bytes(head, "little")
        elif state == "frame" and len(head) == 5:
            fhd = head[4]
            size = 5 + (not fhd & 0x20) + (0, 1, 2, 4)[fhd & 3] + (int(bool(fhd & 0x20)), 2, 4, 8)[fhd >> 6]
            self.checksum = bool(fhd & 4)
            self.need, self.held = size, head  # (6 bytes at least: a window or content size byte)
        elif state == "frame":
            import zstandard

            try:
                window = zstandard.get_frame_parameters(head).window_size
            except zstandard.ZstdError:
                self.lost = True  # (a bad header: the decompressor says so)
                return
            if window > self.max_window:
                # NOTE: not raised here: the bytes walked in this call may end frames before this one, whose records
                # are read first (`_zstd_feeds` feeds up to `at`, then raises), as before any other read error.
                # Short enough for prepare's log line (200 characters of a rejection's detail); in bytes where MiB
                # would read "128 MiB > 128 MiB".
                need, most = f"{window / 2**20:,.0f} MiB", f"{self.max_window / 2**20:,.0f} MiB"
                if need == most:
                    need, most = f"{window:,}-byte", f"{self.max_window:,} bytes"
                self.refused = at, OSError(f"zstd: the frame at byte {at:,} needs a {need} window > {most} (written "
                                           f"by `zstd --long`?); recompress it: `zstd -dc --long=31 FILE | zstd > NEW`")
                self.lost = True
                return
            self.state, self.need = "block_header", 3
        elif state == "block_header":
            h = int.from_bytes(head, "little")
            kind, size = (h >> 1) & 3, h >> 3
            if kind == 3:
                self.lost = True  # (reserved block type: corrupt, the decompressor says so)
                return
            self.after_block, self.need_after = ("checksum", 4) if h & 1 and self.checksum else (
                ("magic", 4) if h & 1 else ("block_header", 3))
            self.state, self.skip = "block", 1 if kind == 1 else size
            if not self.skip:  # an empty raw block
                self.state, self.need = self.after_block, self.need_after
        elif state == "checksum":
            self.state, self.need = "magic", 4


def _zstd_feeds(walk: _ZstdWalk, data: bytes) -> Iterator[bytes]:
    """`data` (the next bytes of a zstd stream) in pieces of at most `_ZSTD_FEED` bytes in which at most
    `_ZSTD_FEED_BLOCKS` blocks end: each decompresses to at most ~1 MiB."""
    ends = walk.ends(data)
    if walk.refused is not None:  # a frame refused for its window: the frames before it are fed, then the error
        data = data[: max(0, walk.refused[0] - (walk.pos - len(data)))]
    start, k = 0, 0  # k: the first block end past `start`
    while start < len(data):
        stop = min(start + _ZSTD_FEED, len(data))
        while k < len(ends) and ends[k] <= start:
            k += 1
        if k + _ZSTD_FEED_BLOCKS - 1 < len(ends) and ends[k + _ZSTD_FEED_BLOCKS - 1] < stop:
            stop = ends[k + _ZSTD_FEED_BLOCKS - 1]
        yield data[start:stop]
        start = stop
    if walk.refused is not None:
        raise walk.refused[1]


def _zstd_chunks(raw, read: int = 1 << 20) -> Iterator[bytes]:
    """Decompressed blocks of a (multi-frame) zstd file, each of about 1 MiB at most (`_ZstdWalk`); a frame whose
    window is over `ZSTD_MAX_WINDOW` is a read error that says so.

    NOTE: zstandard's stream_reader returns a truncated frame's data without any error, which would
    lose the rest of a cut file silently; decompressobj tells us whether the last frame was complete.
    """
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    d, fed = dctx.decompressobj(), False
    walk = _ZstdWalk(ZSTD_MAX_WINDOW)
    while data := raw.read(read):
        # NOTE: fed 16 KiB at a time (`_zstd_feeds`): a corrupt block raises, and everything that one decompress()
        # call had already decoded is lost with it. Feeding the whole 1 MiB read lost up to ~1 MiB of good records
        # before a corruption; at 16 KiB it is what a byte-by-byte feed keeps (measured on a real file).
        for buf in _zstd_feeds(walk, data):
            while buf:
                fed = True
                try:
                    out = d.decompress(buf)
                except zstandard.ZstdError as e:  # corrupt data (not zstd, bad block): a read error, not a crash
                    raise OSError(f"zstd: {e}") from e
                if out:
                    yield out
                if d.eof:
                    buf = d.unused_data
                    d, fed = dctx.decompressobj(), False
                else:
                    buf = b""
    if fed:
        raise EOFError("the zstd stream ends inside a frame (truncated file)")


def _lines(blocks: Iterator[bytes], max_line: int | None = None) -> Iterator[bytes | LongLine]:
    """The lines of a stream of blocks, without their "\n"; see `jsonl_byte_lines` for `max_line`.

    NOTE: each block is searched once and a line's pieces are joined once. `(rest + block).split()` per
    block copied the line so far for every block: quadratic in a line's length (a 48 MB zstd line took
    8.7 s, 16 MB 0.48 s) and it held the whole line whatever max_line_bytes said.
    """
    keep = None if max_line is None else max_line + 1  # + 1: room for the "\r" of a "\r\n"
    parts: list[bytes] = []  # the current line's pieces from earlier blocks (dropped once over `keep`)
    held = 0  # the current line's bytes in earlier blocks, kept or not
    for block in blocks:
        pos = 0
        while (nl := block.find(b"\n", pos)) >= 0:
            size = held + nl - pos
            if keep is not None and size > keep:
                line: bytes | None = None
            elif held:
                parts.append(block[pos:nl])
                line = b"".join(parts)
            else:
                line = block[pos:nl]
            yield _line_or_long(line, size, max_line)
            parts, held, pos = [], 0, nl + 1
        if pos < len(block):  # the line goes on in the next block
            held += len(block) - pos
            if keep is None or held <= keep:
                parts.append(block[pos:])
            else:
                parts = []
    if held:
        yield _line_or_long(b"".join(parts) if parts else None, held, max_line)


def _line_or_long(line: bytes | None, size: int, max_line: int | None) -> bytes | LongLine:
    if line is None or (max_line is not None and size - line.endswith(b"\r") > max_line):
        return LongLine(size)
    return line


def _object_line(line: bytes | LongLine | None) -> dict | None:
    """The object a line holds, or None (not an object, or not parsable)."""
    if not isinstance(line, bytes):
        return None
    try:
        value = json_loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _bad_column(row) -> str:
    """The name of the first column of a one-row Arrow batch whose value does not convert to Python."""
    for name, column in zip(row.schema.names, row.columns):
        try:
            column.to_pylist()
        except Exception:  # noqa: BLE001 (Arrow raises its own types, and Python Overflow/ValueErrors)
            return name
    return "?"


def json_loads(text: str) -> Any:
    """json.loads, and an integer of more than 4,300 digits is a Decimal, not an error.

    NOTE: Python caps int() at 4,300 digits (CVE-2020-10735): json.loads raised a ValueError that is no
    JSONDecodeError for such a number in any field, which ended the reading of the file: the rest of a
    JSONL file, or a whole JSON file, was one unreadable_file rejection. Parsed again only then (a
    parse_int hook on every parse would slow the common case).
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:
        return json.loads(text, parse_int=decimal.Decimal)


def _json_error(e: Exception) -> str:
    # NOTE: json.loads raises RecursionError (not JSONDecodeError) past ~1000 levels of nesting; it was a crash.
    return "nested too deeply to parse" if isinstance(e, RecursionError) else str(e)


def _looks_like_jsonl(text: str) -> bool:
    """A .json file that does not parse as one value, but is JSON Lines with a bad line: it opens with an
    object and most of its lines are objects on their own (so the bad line is counted as one
    `malformed_json` and the good lines are read, instead of the whole file being one rejection)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = lines[0].strip() if lines else ""
    if len(lines) < 2 or not first.startswith("{") or first == "{":  # "{" alone: a pretty-printed object
        return False
    objects = 0
    for ln in lines:
        try:
            objects += isinstance(json_loads(ln), dict)
        except (json.JSONDecodeError, RecursionError):
            continue
    # most lines are objects on their own: a truncated JSON document ('{"data": [', '{...},' lines) is not
    return objects * 2 > len(lines)


class _RowLines:
    """The physical lines of a text stream, numbered, for csv.reader; the lines of the row being read are
    kept so that those after its first can be read again when the row does not parse."""

    def __init__(self, stream: Iterator[str]):
        self.stream, self.again = stream, collections.deque()
        self.row: list[str] = []
        self.next = 1  # the number of the next line handed out

    def __iter__(self) -> _RowLines:
        return self

    def __next__(self) -> str:
        line = self._take()
        if line is None:
            raise StopIteration
        self.row.append(line)
        return line

    def _take(self) -> str | None:
        """The next line (one handed out again first), numbered; None at the end of the stream."""
        line = self.again.popleft() if self.again else next(self.stream, None)
        if line is not None:
            self.next += 1
        return line

    def start_row(self) -> int:
        """A new row starts: returns its first line's number."""
        self.row = []
        return self.next

    def skip_open_quote(self, quoting: bool) -> tuple[int, bool]:
        """After a cell over the field limit: read on, holding nothing, to the end of the line where the row's
        open quote closes (its quotes so far are odd in number; a doubled quote counts twice). Returns (the
        row's last line, whether the quote closed)."""
        open_ = quoting and sum(line.count('"') for line in self.row) % 2 == 1
        self.row = []
        while open_:
            line = self._take()
            if line is None:
                return self.next - 1, False
            open_ = line.count('"') % 2 == 0
        return self.next - 1, True

    def again_from(self, lineno: int) -> None:
        """Hand out the current row's lines again, from line `lineno` on."""
        skip = lineno - (self.next - len(self.row))
        self.again.extendleft(reversed(self.row[skip:]))
        self.next, self.row = lineno, []


_TSV_SNIFF_CHARS = 1 << 16


def _csv_quoted(head: str, delim: str) -> bool:
    """Whether a delimited text quotes cells as csv.writer does: some cell of its head is `"..."` whole."""
    return any(len(c) >= 2 and c[0] == c[-1] == '"' for ln in head.splitlines() for c in ln.split(delim))


def _bad_utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
