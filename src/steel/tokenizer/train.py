"""Train a byte-level BPE on one's own corpus, shaped like Qwen's tokenizer.

Same pre-tokenizer regex as Qwen, byte-level alphabet (every byte is a token, so nothing is ever
unknown), `ignore_merges` like tiktoken, the three special tokens at the END of the vocabulary
(`<|endoftext|>`, `<|im_start|>`, `<|im_end|>` = N-3, N-2, N-1 for `--vocab-size N`), the same
ChatML template. Inputs stream into HF `tokenizers`' trainer; only its word counts stay in memory.

Inputs: `.jsonl`, `.jsonl.zst`, `.jsonl.gz` (one JSON object per line with a string field, `text`
by default) and `.txt` (a file is one document, read in pieces of about 1 MB at line boundaries);
a directory stands for the supported files inside it (the others are named in a warning). Suffixes
count in any case (`A.JSONL`). A malformed line is an error naming file:line.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from steel.cli import UserError
from steel.data.sources import detect_format, json_loads, jsonl_byte_lines, wide_encoding_detail
from steel.tokenizer.qwen import QWEN_PATTERN, SPECIAL_TOKENS, save_tokenizer_dir

SUFFIXES = (".jsonl", ".jsonl.zst", ".jsonl.gz", ".txt")
TXT_PIECE = 1 << 20  # chars per yielded piece of a .txt file
MAX_VOCAB = 1 << 24  # 16,777,216 ids, 100x any LLM vocabulary; see train_bpe

log = logging.getLogger("steel")


@dataclass
class ReadCount:
    """What `iter_corpus` read: the files it opened, and the .txt pieces past a file's first (a .txt file is one
    document, yielded in pieces: documents = items yielded - `more_pieces`)."""

    files: set[Path] = field(default_factory=set)
    more_pieces: int = 0


def _supported(path: Path) -> bool:
    # NOTE: any case, as `steel data prepare` tells formats (`detect_format`): a directory's PART2.JSONL
    # was skipped without a word, and a named notes.TXT refused.
    return path.name.lower().endswith(SUFFIXES)


def _is_txt(path: Path) -> bool:
    return path.name.lower().endswith(".txt")


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, and the supported files inside directories named (sorted), each once; missing paths are errors."""
    return [f for group in expand_input_groups(paths) for f in group]


def expand_input_groups(paths: Iterable[str | Path]) -> list[list[Path]]:
    """`expand_inputs` kept apart by the input that named them (one list per path; a file already named by
    an earlier input is left out of a later one, which may then be empty)."""
    groups: list[list[Path]] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file())
            inside = [f for f in found if _supported(f)]
            # NOTE: named: a .parquet, .csv or .json corpus in the directory was left out without a word.
            skipped = [str(f.relative_to(p)) for f in found if not _supported(f)]
            shown = ", ".join(skipped[:5]) + (f", ... ({len(skipped)} in all)" if len(skipped) > 5 else "")
            if not inside:
                raise UserError(f"--input {p}: directory holds no {'/'.join(SUFFIXES)} file"
                                + (f" (only {shown})" if skipped else ""))
            if skipped:
                log.warning("warning: --input %s: skipped %d file(s) of a type not read (%s): %s; convert them to JSONL "
                            "to train on them", p, len(skipped), ", ".join(SUFFIXES), shown)
            groups.append(inside)
        elif p.is_file():
            if not _supported(p):
                raise UserError(f"--input {p}: unsupported file type (expected {', '.join(SUFFIXES)})")
            groups.append([p])
        else:
            raise UserError(f"--input {p}: no such file or directory")
    # Keyed by the resolved path: another spelling of a file (relative, `..`, a link) is still read once.
    seen: set[Path] = set()
    out: list[list[Path]] = []
    for group in groups:
        out.append([])
        for f in group:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                out[-1].append(f)
    return out


_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_utf8(path: Path, lineno: int, line: str) -> None:
    if _NOT_UTF8.search(line):
        raise UserError(f"{path}:{lineno}: invalid UTF-8")


def iter_documents(path: Path, field: str = "text", on_bytes=None, count: ReadCount | None = None) -> Iterator[str]:
    """Documents of one input file; `on_bytes(n)` is told how many bytes of the file were consumed, `count`
    what was read.

    JSONL lines come from the data pipeline's reader (`steel.data.sources.jsonl_byte_lines`), which
    notices a truncated zstd file (zstandard's stream_reader would end it silently).
    """
    with open(path, "rb") as raw:
        if count is not None:
            count.files.add(path)
        seen = lineno = 0

        def advance():
            nonlocal seen
            if on_bytes is not None:
                pos = raw.tell()
                on_bytes(pos - seen)
                seen = pos

        try:
            # NOTE: a UTF-16 file was "invalid UTF-8" at line 1 with no word of its encoding, and one without a byte
            # order mark whose text is ASCII (valid UTF-8: a NUL every other byte) trained a .txt's NULs silently.
            wide = wide_encoding_detail(raw, path)
            if wide is not None:
                raise UserError(f"{path}: {wide}")
            if _is_txt(path):
                # NOTE: bytes that are not UTF-8 become lone surrogates here, so the line that holds
                # them is known (a strict decoder fails on a whole decoded block, with no line number).
                # utf-8-sig: a BOM opening the file is no text, as in `steel data prepare`.
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
                piece: list[str] = []
                size = pieces = 0
                for lineno, line in enumerate(text, 1):
                    _check_utf8(path, lineno, line)
                    piece.append(line)
                    size += len(line)
                    if size >= TXT_PIECE:
                        if count is not None and pieces:
                            count.more_pieces += 1
                        pieces += 1
                        yield "".join(piece)
                        piece, size = [], 0
                        advance()
                if piece:
                    if count is not None and pieces:
                        count.more_pieces += 1
                    yield "".join(piece)
            else:
                for lineno, raw_line in enumerate(jsonl_byte_lines(raw, detect_format(path)), 1):
                    if not raw_line.strip():
                        continue
                    try:
                        line = raw_line.decode("utf-8")
                    except UnicodeDecodeError:
                        raise UserError(f"{path}:{lineno}: invalid UTF-8") from None
                    try:
                        doc = json_loads(line)[field]  # an integer of over 4,300 digits is no error there
                    except json.JSONDecodeError as e:
                        raise UserError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
                    except RecursionError:
                        raise UserError(f"{path}:{lineno}: malformed JSON (nested too deeply to parse)") from None
                    except (KeyError, TypeError):
                        raise UserError(f"{path}:{lineno}: no {field!r} field") from None
                    if not isinstance(doc, str):
                        raise UserError(
                            f"{path}:{lineno}: field {field!r} is {type(doc).__name__}, not a string"
                        )
                    if _SURROGATE.search(doc):  # a JSON "\ud800" escape: not Unicode text
                        raise UserError(f"{path}:{lineno}: field {field!r} holds a lone surrogate (\\uXXXX escape)")
                    yield doc
                    if lineno % 256 == 0:
                        advance()
        except (OSError, EOFError, zlib.error) as e:  # corrupt/truncated compressed data
            raise UserError(f"{path}: read error after line {lineno} ({e})") from None
        advance()


def iter_corpus(
    files: list[Path] | list[list[Path]], field: str = "text", limit_docs: int | None = None, on_bytes=None,
    count: ReadCount | None = None,
) -> Iterator[str]:
    """The documents of `files` in order. With `limit_docs`, that many (or all there are) spread over the
    files: each file in turn gives at most an even share of what is left (rounded up), a file holding fewer
    documents leaves its unused share to the files after it, and what the last ones cannot use goes back to
    the files cut at their share. The first N documents instead would train a `--input zh/ en/ code/`
    tokenizer on Chinese alone.

    `files` may be grouped by input (`expand_input_groups`): the shares then go to the inputs first and
    within each to its files, so a directory of many files takes no more than a single-file input and a
    limit under the first directory's file count still reaches every input. `count` is told what was read.
    """
    if limit_docs is None:
        for path in (f for item in files for f in (item if isinstance(item, list) else [item])):
            yield from iter_documents(path, field, on_bytes, count)
        return
    # NOTE: a file holding fewer than its share leaves the rest to those after it; what the last ones cannot use
    # goes back, in a further pass, to the files cut at their share (read on from where they stopped).
    taken: dict[Path, int] = {}  # documents given per file
    done: set[Path] = set()  # files read to their end
    reported: dict[Path, int] = {}  # bytes of each file told to on_bytes: a further pass re-reads its start
    left = limit_docs
    while left > 0:
        given = [0]
        yield from _spread(files, left, field, on_bytes, given, taken, done, reported, count)
        left -= given[0]
        if given[0] == 0:  # every file read to its end
            return


def _open(item, done: set[Path]) -> bool:
    return any(_open(i, done) for i in item) if isinstance(item, list) else item not in done


def _once(path: Path, on_bytes, reported: dict[Path, int]):
    """`on_bytes` for one read of `path` that tells only bytes past those told before (`reported`): a further
    pass reads a file again from its start, and the progress bar went past 100%."""
    if on_bytes is None:
        return None
    pos = 0

    def tell(n: int) -> None:
        nonlocal pos
        pos += n
        if pos > reported.get(path, 0):
            on_bytes(pos - reported.get(path, 0))
            reported[path] = pos

    return tell


def _spread(items: list, limit: int, field: str, on_bytes, used: list[int], taken: dict[Path, int],
            done: set[Path], reported: dict[Path, int], count: ReadCount | None = None) -> Iterator[str]:
    """At most `limit` documents of `items` (files, or lists of them) not given yet, each item with documents
    left given in turn an even share of what is left; `used[0]` counts the documents given."""
    items = [i for i in items if _open(i, done)]
    left = limit
    for i, item in enumerate(items):
        if left <= 0:
            return
        share = -(-left // (len(items) - i))
        before = used[0]
        if isinstance(item, list):
            yield from _spread(item, share, field, on_bytes, used, taken, done, reported, count)
        elif _is_txt(item):  # one document, yielded in pieces: counted once
            used[0] += 1
            done.add(item)
            yield from iter_documents(item, field, on_bytes, count)
        else:
            skip, n = taken.get(item, 0), 0
            docs = iter_documents(item, field, _once(item, on_bytes, reported), count)
            for k, doc in enumerate(docs):
                if k < skip:
                    continue
                if n >= share:
                    break
                n += 1
                used[0] += 1
                yield doc
            else:
                done.add(item)
            docs.close()
            taken[item] = skip + n
        left -= used[0] - before


def new_bpe() -> Tokenizer:
    """An untrained BPE with Qwen's pre-tokenization and byte-level decoding."""
    tok = Tokenizer(BPE(ignore_merges=True))  # like tiktoken: a pre-token in the vocabulary is one id
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def train_bpe(
    texts: Iterable[str], vocab_size: int, min_frequency: int = 2, show_progress: bool = False
) -> Tokenizer:
    """Train on `texts`; the result has at most `vocab_size` ids, the 3 special tokens last."""
    n_special = len(SPECIAL_TOKENS)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + n_special + 1:
        raise UserError(
            f"--vocab-size {vocab_size}: must be at least {len(alphabet) + n_special + 1} (256 bytes + 3 special + 1)"
        )
    if vocab_size > MAX_VOCAB:
        # NOTE: tokenizers' trainer reserves ~66 bytes per id up front: 2**31 aborted the process (a Rust
        # "memory allocation of 141733920784 bytes failed"), 2*10**8 took 13 GB for a small corpus.
        raise UserError(f"--vocab-size {vocab_size}: must be at most {MAX_VOCAB:,} (the trainer reserves memory "
                        "for every id before it reads the corpus)")
    if not 1 <= min_frequency < 2**64:  # the trainer's counter is a u64: larger was an OverflowError traceback
        raise UserError(f"--min-frequency {min_frequency}: must be >= 1 (and below 2**64)")
    tok = new_bpe()
    trainer = BpeTrainer(
        vocab_size=vocab_size - n_special,
        min_frequency=min_frequency,
        initial_alphabet=alphabet,
        special_tokens=[],  # added after training so they take the last ids, as in Qwen
        show_progress=show_progress,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


def check_out_dir(out_dir: str | Path, overwrite: bool, what: str = "--out") -> None:
    """Refuse to write a tokenizer into a non-empty directory (or over a file) unless `overwrite`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{what} {out}: exists and is not a directory")
    if out.is_dir() and not overwrite:
        names = sorted(p.name for p in out.iterdir())
        if names:
            shown = ", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5 else "")
            raise UserError(
                f"{what} {out}: directory is not empty ({shown}); data prepared with a tokenizer there "
                "would decode wrongly with a new one (use --overwrite to replace it)"
            )


def _refuse_wide(files: list[Path]) -> None:
    """Fail on the first file in UTF-16/32 (`wide_encoding_detail`), told by its first 4 KB.

    NOTE: `iter_documents` fails on such a file when it reaches it, after reading (hours of) every file before it."""
    for path in files:
        try:
            with open(path, "rb") as raw:
                wide = wide_encoding_detail(raw, path)
        except OSError:
            continue  # (a read error is reported where the file is read)
        if wide is not None:
            raise UserError(f"{path}: {wide}")


def train_tokenizer(
    inputs: list[str | Path],
    out_dir: str | Path,
    vocab_size: int,
    min_frequency: int = 2,
    limit_docs: int | None = None,
    field: str = "text",
    show_progress: bool = True,
    overwrite: bool = False,
    read: dict | None = None,
) -> Tokenizer:
    """`steel tokenizer train`: stream `inputs` into a BPE trainer and write a tokenizer directory.

    A non-empty `out_dir` is refused unless `overwrite`: data prepared with the tokenizer there
    would decode to other text with a new one. `read`, when given, is filled with what was trained on:
    {"documents": N, "files": files opened, "of_files": files the inputs name}.
    """
    import sys

    from steel.runlog import progress_bar

    if limit_docs is not None and limit_docs < 1:
        raise UserError(f"--limit-docs {limit_docs}: must be >= 1")
    check_out_dir(out_dir, overwrite)
    groups = expand_input_groups(inputs)
    files = [f for group in groups for f in group]
    total = sum(f.stat().st_size for f in files)
    if limit_docs is None:  # (every file is read: one in UTF-16/32 fails the run anyway)
        _refuse_wide(files)
    n_docs = 0
    count = ReadCount()

    def counted(docs: Iterator[str]) -> Iterator[str]:
        nonlocal n_docs
        for doc in docs:
            n_docs += 1
            yield doc

    # tokenizers' own bar (the merge phase) only on a terminal; off one it prints blank lines. NOTE: asked before
    # rich's bar starts: that bar puts a proxy in sys.stderr, whose isatty() is io.TextIOBase's False in rich 13.0
    # (pyproject allows rich>=13; later rich forwards it), so there the merge bar never showed.
    hf_bar = show_progress and sys.stderr.isatty() and not os.environ.get("STEEL_NO_PROGRESS")
    with progress_bar(
        "reading corpus", total=total, unit="bytes", disable=None if show_progress else True
    ) as advance:
        docs = counted(iter_corpus(groups, field, limit_docs, advance, count))  # spread over the inputs
        tok = train_bpe(docs, vocab_size, min_frequency, hf_bar)
    n_docs -= count.more_pieces  # a .txt file is one document
    if read is not None:
        read.update(documents=n_docs, files=len(count.files), of_files=len(files))
    if n_docs == 0:  # a bytes-only tokenizer learned from nothing: a wrong --input, not a result
        raise UserError(f"--input: no documents in {len(files)} file(s) ({', '.join(map(str, files[:3]))}"
                        f"{', ...' if len(files) > 3 else ''}); nothing to train on")
    # A rank file left by a replaced Qwen build describes another vocabulary; `load_encoder` reads any.
    for stale in Path(out_dir).glob("*.tiktoken"):
        stale.unlink()
    save_tokenizer_dir(tok, out_dir)
    return tok
