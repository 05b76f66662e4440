"""`steel data prepare`: raw sources -> normalized, filtered, deduplicated, tokenized chunk files + manifest.

    main process                                   worker processes (N, in order of submission)
    read files (SourceReader) ─ batches of ~2 MB ─▶ normalize ▶ render ChatML ▶ filters ▶
                                                    dedup hashes + MinHash ▶ tokenize + EOS
    ◀─ results, consumed in submission order ─────
    exact/near dedup decision (input order) ▶ per-source ChunkSink ▶ chunk files ▶ manifest.json

Streaming: at most `2 * workers` batches are in flight, chunks are written as they fill, nothing
but the chunks, the manifest and (with exact dedup) `documents.npy` is written to disk. Memory is
bounded apart from the dedup index (measured in README, "Data preparation") and `documents.npy`'s
columns (22 bytes per kept document). Results are consumed in input order, so the chunks are
byte-identical whatever the worker count.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import re
import shutil
import signal
import threading
import time
import unicodedata
from array import array
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_type_hints

import numpy as np

from steel.cli import UserError, done_so_far
from steel.config import ConfigError, to_dict
from steel.data.chat import LAYOUT_FIELDS, conversation_text, render_chatml
from steel.data.chunks import (
    DOCUMENTS,
    DOCUMENTS_DTYPE,
    MANIFEST,
    SIGNATURES,
    ChunkWriter,
    head_tail_md5,
    read_manifest,
    write_manifest,
)
from steel.data.config import DataConfig, DedupConfig, NormalizeConfig, SourceConfig
from steel.data.dedup import Deduper, MinHasher, exact_hash, fold
from steel.data.filters import build_filters
from steel.data.normalize import Normalizer, normalize_messages
from steel.data.sources import (
    SourceReader,
    compression_by_name,
    compression_of,
    convert_command,
    detect_format,
    expand_paths,
    file_id,
    iconv_name,
    input_head,
    parse_record_path,
    wide_encoding_of,
    wide_pipeline_of,
)
from steel.data.swap import JOURNAL, chunk_name, finish_swap, log_left, swap_in
from steel.data.tokenize import encode_documents
from steel.tokenizer.qwen import scratch_dirs

DEDUP_HASHES = "dedup_exact_hashes.npy"  # written before documents.npy held the hashes; removed on a rerun
STAGING = ".partial"  # OUT/.partial/: a run's chunks and sidecars until the whole output is complete


# ---- worker side ----------------------------------------------------------------------------------
@dataclass
class WorkerSpec:
    """Everything a worker needs, picklable (the encoder is passed beside it)."""

    normalize: NormalizeConfig
    filters: list[dict[str, Any]]
    root: str
    dedup: DedupConfig
    source_names: list[str]
    source_kinds: list[str]


class DocProcessor:
    """normalize -> filters -> dedup signatures -> tokens, for one batch of documents."""

    def __init__(self, spec: WorkerSpec, encoder):
        self.spec = spec
        self.encoder = encoder
        self.normalize = Normalizer(spec.normalize)
        self.filters = build_filters(spec.filters, spec.source_names, Path(spec.root), setup=True,
                                     normalize=self.normalize)
        # Per source: the filters that apply to it (decided once, not per document).
        self.per_source = [
            [f for f in self.filters if f.applies(name, kind)] for name, kind in zip(spec.source_names, spec.source_kinds)
        ]
        self.exact = spec.dedup.exact
        self.minhash = MinHasher(spec.dedup.num_perm, spec.dedup.ngram, spec.dedup.seed) if spec.dedup.near else None

    def process(self, batch: list[tuple[int, Any]]):
        """batch: [(source index, text or messages)] -> (statuses, hashes, signatures, tokens, lengths).

        statuses[i] is None for a document that passed (its hash/signature/tokens are in the arrays, in
        order), "f:<filter key>" when a filter dropped it, "r:<reason>" when it was rejected.
        """
        statuses: list[str | None] = []
        docs, chat, plains = [], [], []
        for src, doc in batch:
            if _lone_surrogates(doc):  # JSON "\ud800" escapes decode to strings that are not Unicode text
                statuses.append("r:invalid_utf8")
                continue
            if isinstance(doc, str):
                text = plain = self.normalize(doc)
            else:
                msgs, reason = normalize_messages(self.normalize, doc)  # the same code as `steel sft`
                if msgs is None:
                    statuses.append("r:" + reason)
                    continue
                # NOTE: without system turns: under a 291-character source `system:` prompt, near-dedup
                # dropped 83 of 1,475 distinct ruozhiba Q&A pairs as copies of each other.
                plain = conversation_text(msgs)
                text = render_chatml(msgs)
            if not plain.strip():
                statuses.append("r:empty")
                continue
            dropped = next((f.key for f in self.per_source[src] if not f.keep(plain)), None)
            if dropped is not None:
                statuses.append("f:" + dropped)
                continue
            statuses.append(None)
            docs.append(text)
            chat.append(not isinstance(doc, str))
            plains.append(plain)
        hashes = sigs = None
        if self.exact or self.minhash is not None:
            folded = [fold(p) for p in plains]
            if self.exact:
                hashes = [exact_hash(f) for f in folded]
            if self.minhash is not None:
                sigs = np.stack([self.minhash.signature(f) for f in folded]) if folded else None
        tokens, lengths = encode_documents(self.encoder, docs, chat)
        return statuses, hashes, sigs, tokens, lengths


def _lone_surrogates(doc) -> bool:
    texts = [doc] if isinstance(doc, str) else [m["content"] for m in doc]
    try:
        for t in texts:
            t.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_PROCESSOR: DocProcessor | None = None
_INIT_ERROR: Exception | None = None


def _init_worker(spec: WorkerSpec, encoder) -> None:
    global _PROCESSOR, _INIT_ERROR
    # A forked worker inherits the main process's SIGTERM handler (`_sigterm_as_interrupt`): SIGTERM
    # (`pool.terminate()`, or a kill of the process group) must end a worker, not raise in it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Ctrl-C reaches the whole process group: the main process alone handles it (and stops the workers). A
    # worker ended by it would make the pool "broken", reported as a worker that died, not as an interrupt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _PROCESSOR = DocProcessor(spec, encoder)
    except Exception as e:  # noqa: BLE001 - re-raised in the main process by the first batch
        # NOTE: an exception escaping a pool initializer kills the worker and multiprocessing starts another,
        # forever: the run hung, printing a traceback per respawn. Kept, it reaches the main process.
        _INIT_ERROR = e


def _process_batch(batch):
    if _PROCESSOR is None:
        raise _INIT_ERROR
    return _PROCESSOR.process(batch)


def _batch_result(future, metas: list[list[tuple[int, str, int, int]]], procs: list):
    """A worker's result; a worker that died (the out-of-memory killer, a signal, a crash in native code)
    is one clear error naming the documents in flight (`metas`: this batch's and those after it), not a hang."""
    try:
        return future.result()
    except BrokenProcessPool:
        # NOTE: the executor's own thread reaps the workers (and terminates the others) just after failing the
        # futures: a status read racing its waitpid is None for a moment ("exit status unknown", 1 run in 6).
        deadline = time.monotonic() + 5
        while any(p.exitcode is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.01)
        codes = sorted({p.exitcode for p in procs if p.exitcode not in (None, 0, -signal.SIGTERM)})
        (_, rel0, line0, _), (_, rel1, line1, _) = metas[0][0], metas[-1][-1]
        raise ChildProcessError(
            f"a tokenizer worker process died (exit status {', '.join(map(str, codes)) or 'unknown'}; -9 is "
            f"SIGKILL, e.g. the out-of-memory killer) while documents {rel0}:{line0} to {rel1}:{line1} were in "
            "flight; try fewer `workers` or a smaller `batch_chars`") from None


def _worker_processes(pool: ProcessPoolExecutor) -> list:
    # NOTE: ProcessPoolExecutor has no public handle on its processes before Python 3.14 (terminate_workers).
    return list((getattr(pool, "_processes", None) or {}).values())


def _stop_workers(pool: ProcessPoolExecutor, procs: list) -> None:
    """Stop the workers now, busy or not (the run is done, failed or interrupted), and reap them."""
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.exitcode is None:
            p.terminate()
    for p in procs:
        p.join()


# ---- main side ------------------------------------------------------------------------------------
@dataclass
class SourceStats:
    read: int = 0
    kept: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    chars: int = 0  # characters of the kept documents (after normalization, as tokenized)


class ChunkSink:
    """The chunk files of one source: fills `chunk_tokens`-token files in order."""

    def __init__(self, out_dir: Path, prefix: str, chunk_tokens: int, vocab_size: int, fingerprint: str):
        self.out_dir, self.prefix, self.chunk_tokens = out_dir, prefix, chunk_tokens
        self.vocab_size, self.fingerprint = vocab_size, fingerprint
        self.writer: ChunkWriter | None = None
        self.files: list[tuple[str, int]] = []

    def write(self, tokens: np.ndarray) -> None:
        while len(tokens):
            if self.writer is None:
                name = f"{self.prefix}-{len(self.files):05d}.bin"
                self.writer = ChunkWriter(self.out_dir / name, self.vocab_size, self.fingerprint)
            room = self.chunk_tokens - self.writer.num_tokens
            self.writer.write(tokens[:room])
            tokens = tokens[room:]
            if self.writer.num_tokens == self.chunk_tokens:
                self._close_current()

    def _close_current(self) -> None:
        path = self.writer.close()
        self.files.append((path.name, self.writer.num_tokens))
        self.writer = None

    def close(self) -> None:
        if self.writer is not None and self.writer.num_tokens:
            self._close_current()
        elif self.writer is not None:
            self.writer.abort()
            self.writer = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (0-based I) -> (I, N)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


def file_sizes(files: list[tuple[int, Path, str]]) -> dict[tuple[int, Path, str], int]:
    """Each file's size in bytes (0 when it cannot be stat'ed: reading it counts the error)."""
    sizes = {}
    for f in files:
        try:
            sizes[f] = f[1].stat().st_size
        except OSError:
            sizes[f] = 0
    return sizes


HEAD_BYTES = 1 << 16  # the most bytes of each input file whose digest the manifest records (`file_heads`)


def file_heads(files: list[tuple[int, Path, str]]) -> dict[tuple[int, Path, str], tuple[str, int] | None]:
    """Each file's (digest, length) of its first HEAD_BYTES bytes once decompressed (`sources.input_head`; None
    when it cannot be read or is empty).

    NOTE: with the sizes, the loader tells a file that grew between two prepares (records appended: the same
    path, the same first bytes, a larger size) from one rewritten; it was taken for new data, and the documents
    of both prepares trained twice. The decompressed bytes and their length: a digest of the file's own first 64 KB
    missed a .zst/.gz recompressed whole (its compressed head changes: gzip's mtime, zstd's frame size) and a file
    under 64 KB (its head was all of it); the loader digests the first `length` bytes of a file recorded with
    another length now (`loader.same_start`). One read of up to 64 KB per file, in threads (an open on a network
    file system takes ~1 ms: 100k files took minutes serially); ~47 characters per file in the manifest, and its
    name."""
    from concurrent.futures import ThreadPoolExecutor

    # NOTE: a batch of files at a time: Executor.map submits every task at once, a Future of ~1.7 KB per file held
    # until the end (175 MB at 100k files, 1.7 GB at 1M, for 23 MB of digests).
    heads: dict[tuple[int, Path, str], tuple[str, int] | None] = {}
    with ThreadPoolExecutor(16) as pool:
        for start in range(0, len(files), _HEAD_BATCH):
            batch = files[start : start + _HEAD_BATCH]
            heads.update(zip(batch, pool.map(lambda f: input_head(f[1], HEAD_BYTES), batch)))
    return heads


_HEAD_BATCH = 1024  # files whose heads are read at once (`file_heads`)


def assign_shard(files: list[tuple[int, Path, str]], index: int, count: int,
                 sizes: dict[tuple[int, Path, str], int] | None = None) -> list[tuple[int, Path, str]]:
    """Deterministic 1/N of the files, balanced by size: largest first, each to the least loaded shard.

    `files` are (source index, path, name relative to the root), `sizes` their sizes (stat'ed when not
    given); the decision depends only on the relative names and sizes, so every node computes the same
    split from the same files. Files added or resized between the shards' runs shift it: each shard
    records `input_listing`'s digest, and `merge` refuses shards whose digests differ.
    """
    if count == 1:
        return files
    sizes = file_sizes(files) if sizes is None else sizes
    load = [0] * count
    mine = set()
    for f in sorted(files, key=lambda f: (-sizes[f], f[0], f[2])):
        k = min(range(count), key=lambda s: (load[s], s))
        load[k] += sizes[f]
        if k == index:
            mine.add(f)
    return [f for f in files if f in mine]  # keep input order


def input_listing(files: list[tuple[int, Path, str]], sizes: dict, names: list[str]) -> tuple[str, dict]:
    """(digest, {source name: [[relative name, size], ...]}) of the whole, unsharded input, in input order.

    What the shard split and every document's place in the unsharded input (`documents.npy`) are computed
    from: shards of one dataset must have seen the same listing.
    """
    listing: dict[str, list] = {name: [] for name in names}
    for f in files:
        listing[names[f[0]]].append([f[2], sizes[f]])
    text = json.dumps(listing, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), listing


_FORMATS = [f for f in get_args(get_type_hints(SourceConfig)["format"]) if f != "auto"]


def check_formats(cfg: DataConfig, files: list[tuple[int, Path, str]]) -> None:
    """Every file of a source with `format: auto` has a known suffix: fail before any work, naming the field
    (reading would otherwise stop at that file, after the sources before it were processed)."""
    for i, path, rel in files:
        src = cfg.sources[i]
        if src.format != "auto":
            continue
        try:
            fmt = detect_format(path)  # the name the reader goes by (`rel` is resolved: a symlink's target)
        except ConfigError:
            raise ConfigError(f"sources[{i}].path (source {src.name!r}) matches {path}, whose format the file name "
                              f"does not tell; set sources[{i}].format ({', '.join(_FORMATS)}) or narrow the "
                              "pattern") from None
        if fmt == "txt" and src.kind == "chat":  # the config check sees patterns only (`data/*`)
            raise ConfigError(f"sources[{i}].path (source {src.name!r}) matches {path}, a txt file: a chat source "
                              "reads records with turns (jsonl, json, parquet, csv); narrow the pattern")


_UNSET: Any = object()


def _reading(cfg: DataConfig, i: int, fmt: str, path: Path, flts: list,
             steps: tuple | None = _UNSET) -> tuple[str, str]:
    """What decides the documents source `i` gets from a file of format `fmt`: (the settings its reader uses for
    that format, as the reader resolves them; the filters that apply to it, less `sources`, `kinds`, `label`).
    `steps`: a record path's steps to take instead of the source's own."""
    src = cfg.sources[i]
    if fmt == "txt":  # lines or whole files as they are: no records, so no text_field or record_path
        key: tuple = (src.kind, src.txt_unit)
    else:
        if steps is _UNSET:  # as the reader parses it: `data.[*]` is `data[*]`
            steps = tuple(parse_record_path(src.record_path)) if src.record_path else None
        key = (src.kind, steps)
        layout = src.chat_layout or "alpaca"  # fields as the reader merges them: naming a default changes nothing
        key += (src.text_field,) if src.kind == "text" else (layout, sorted({**LAYOUT_FIELDS[layout], **src.fields}
                                                                             .items()), src.system)
    if fmt == "csv":
        tsv = str(path).lower().endswith((".tsv", ".tsv.gz", ".tsv.zst"))
        delim = "\t" if tsv and src.csv_delimiter == "," else src.csv_delimiter
        key += (delim, "minimal" if src.csv_quoting == "auto" and not tsv else src.csv_quoting)
    spec = [sorted((k, repr(v)) for k, v in s.items() if k not in ("sources", "kinds", "label"))
            for s, f in zip(cfg.filters, flts) if f.applies(src.name, src.kind)]
    return repr(key), repr(spec)


def check_overlaps(cfg: DataConfig, files: list[tuple[int, Path, str]], log: logging.Logger | None = None) -> None:
    """Refuse a file that two sources read the same way (overlapping globs): its records were read twice,
    kept twice with dedup off, and with exact dedup on the second source silently lost them all to
    `dedup_exact`. Two sources may read one file in different ways (a text field each, text and chat); under
    other filters (a length filter each splits a file into two sources of their own weights) it is a warning,
    once per pair of sources: a document both keep is still read twice.

    NOTE: the way is the reader's: `format: auto` and the format it detects are one way, and a setting the
    file's format does not use (`csv_delimiter` on JSONL) changes nothing; both let a double read through. So
    are json and jsonl: `json` streams a JSON Lines file as `jsonl` reads it (C4's .json.gz under `format:
    jsonl` in one source and `auto` in another was read twice), and a JSON document that the two read apart
    is one that the jsonl source cannot read (a rejection per line). So are `record_path: "[*]"` and none at all
    on a JSON array, which the json reader reads item by item without a record path: a `json` source without one
    also reads the file as a `[*]` source would (it reads no JSON Lines file as one: its lines are objects,
    where `[*]` finds nothing, or arrays, which are no records)."""
    flts = build_filters(cfg.filters, [s.name for s in cfg.sources])
    ways: dict[tuple, tuple[str, str]] = {}  # (source, format, tsv) -> way; once per source, not per file
    items: dict[int, tuple[str, str]] = {}  # a json source without a record path -> its way as `[*]`
    first: dict[tuple, tuple[int, str]] = {}  # -> (source, its format)
    unfiltered: dict[tuple, int] = {}
    pairs: dict[tuple[int, int], list] = {}  # (first source, other) -> [files, an example]
    dirs: dict[str, str] = {}  # file_id's cache of directories' real paths
    for i, path, _ in files:
        src = cfg.sources[i]
        fmt = src.format if src.format != "auto" else detect_format(path)
        fmt = "jsonl" if fmt in ("jsonl.zst", "jsonl.gz") else fmt  # one reader; compression told by magic
        tsv = fmt == "csv" and str(path).lower().endswith((".tsv", ".tsv.gz", ".tsv.zst"))
        way = ways.get((i, fmt, tsv))
        if way is None:
            way = ways[i, fmt, tsv] = _reading(cfg, i, fmt, path, flts)
        also = None
        if fmt == "json" and src.record_path is None:
            if i not in items:
                items[i] = _reading(cfg, i, fmt, path, flts, steps=(None,))
            also = items[i]
        fid = file_id(path, dirs)
        same = "jsonl" if fmt == "json" else fmt  # the reader of the two, for JSON Lines (see the NOTE)
        j, fmt_j = first.setdefault((fid, same, *way), (i, fmt))
        if also is not None:  # (both keys: the `[*]` source may come first or after)
            j_also, fmt_also = first.setdefault((fid, same, *also), (i, fmt))
            j, fmt_j = (j, fmt_j) if j != i else (j_also, fmt_also)
        if j != i:
            how = f" (one as {fmt}, the other as {fmt_j}: both read JSON Lines alike)" if fmt != fmt_j else ""
            rp_i, rp_j = src.record_path, cfg.sources[j].record_path
            if (rp_i is None) != (rp_j is None):
                how = (" (record_path '[*]' reads a JSON array's items, which are the records a json source "
                       "without a record_path reads)")
            elif rp_i != rp_j:
                how = f" (record_path {rp_j!r} and {rp_i!r} are one path)"
            raise ConfigError(f"sources[{i}].path (source {src.name!r}) matches {path}, which sources[{j}] (source "
                              f"{cfg.sources[j].name!r}) reads too, with the same settings and filters{how}: its "
                              "records would be read twice; narrow a pattern (to weight some files more, give them a "
                              "source of their own with a `weight`)")
        j = unfiltered.setdefault((fid, same, way[0]), i)
        if also is not None:
            j_also = unfiltered.setdefault((fid, same, also[0]), i)
            j = j if j != i else j_also
        if j != i:
            pairs.setdefault((j, i), [0, path])[0] += 1
    for (j, i), (n, path) in pairs.items():
        (log or logging.getLogger("steel")).warning(
            "sources[%d] (%s) reads %d file(s) that sources[%d] (%s) reads too, with the same settings but other "
            "filters (e.g. %s): a document that both keep is kept twice, or with dedup.exact on counted as %s's "
            "dedup_exact; right for a split by filters, else narrow a pattern",
            i, cfg.sources[i].name, n, j, cfg.sources[j].name, path, cfg.sources[i].name)


_HINTS = {"text": "check its text_field, record_path and format",
          "chat": "check its chat_layout (default: alpaca), fields, record_path and format"}
# A source whose every rejection has one of these reasons: no field or format to check (big .txt books, one
# document per file over max_doc_chars, and a GBK-encoded CSV were told to check their text_field).
_REASON_HINTS = {
    "too_large": "each is over a size limit (max_doc_chars; max_line_bytes for a JSONL line, max_json_file_bytes "
                 "for a JSON file): raise it, or cut .txt files into documents with txt_unit: paragraph or line",
    "invalid_utf8": "its files are not UTF-8 text (GBK or GB18030? see the rejections above): convert them, e.g. "
                    "{gb}",
}
# NOTE: `invalid_utf8` of a UTF-16 file was told to convert from GB18030. Where the rejections' details are not
# at hand (a merge, `steel data inspect`), both are said.
_UNKNOWN_UTF8_HINT = ("its files are not UTF-8 text (GBK or GB18030? UTF-16? the prepare logs' rejections say): "
                      "convert them, e.g. {gb}, or {wide}")


def _converts(iconv: str, files, paths: dict[str, str | Path] | None = None) -> str:
    """`iconv` ("iconv -f GB18030 -t UTF-8") as a source of `files` (names) needs it: through the decompressor and
    back for its compressed files (`convert_command`, FILE for the file), alone for the others; each way once. A file
    that `paths` places (name -> where it is now) is told compressed by its magic number, as its reader tells it;
    the others by their names.

    NOTE: told by the name alone, a zstd file named x.txt (read as zstd: the readers go by the magic number) was told
    `iconv` on its compressed bytes, and a plain file named x.zst a `zstd -dc` that fails."""
    # NOTE: `iconv` alone was told for compressed files too: on a .jsonl.zst it converts the compressed bytes (garbage)
    paths = paths or {}
    return ", ".join(sorted({convert_command(iconv, f, compression_of(paths[f]) if f in paths else compression_by_name(f),
                                             "FILE") for f in files})) or iconv


def _utf8_hint(wide: dict[tuple[str, str, str], int] | None, invalid: int, files=(),
               paths: dict[str, str | Path] | None = None) -> str:
    """The hint for a source of `files` (names) whose rejections are all `invalid_utf8` (`invalid` of them), `wide`
    of which came from UTF-16/32 files, per (encoding, decompressor, new file name) ("" and "" for a plain file;
    None: not known); `paths` as `_converts` takes it."""
    gb = _converts("iconv -f GB18030 -t UTF-8", files, paths)
    if wide is None:
        return _UNKNOWN_UTF8_HINT.format(gb=gb, wide=_converts("iconv -f UTF-16LE -t UTF-8", files, paths))
    if not wide:
        return _REASON_HINTS["invalid_utf8"].format(gb=gb)
    encs = sorted({e for e, _, _ in wide})
    # NOTE: each file through its decompressor and back, as its rejection says (told by its magic number)
    convert = ", ".join(f"{tool} -dc FILE | iconv -f {iconv_name(e)} -t UTF-8 | {tool} > {new}" if tool
                        else f"iconv -f {iconv_name(e)} -t UTF-8" for e, tool, new in sorted(wide))
    if sum(wide.values()) >= invalid:
        return f"its files are {' or '.join(encs)}, not UTF-8 (see the rejections above): convert them, e.g. {convert}"
    return (f"its files are not UTF-8 text: {sum(wide.values()):,} of the rejections are {' or '.join(encs)} files "
            f"({convert}), the others GBK or GB18030? ({gb}; see the rejections above)")


def manifest_paths(manifest: dict) -> dict[str, str]:
    """Where the files `manifest`'s sources name are on this machine, as far as it says (`inputs.root`, the resolved
    absolute root, and `inputs.elsewhere`): name -> path, for `kept_nothing`; {} for an older Steel's manifest."""
    inputs = manifest.get("inputs") if isinstance(manifest.get("inputs"), dict) else {}
    root, elsewhere = inputs.get("root"), inputs.get("elsewhere")
    elsewhere = elsewhere if isinstance(elsewhere, dict) else {}
    paths = {}
    for s in (manifest.get("sources") or {}).values():
        for f in (s.get("files") if isinstance(s, dict) and isinstance(s.get("files"), list) else ()):
            if isinstance(f, str) and isinstance(elsewhere.get(f), str):
                paths[f] = elsewhere[f]
            elif isinstance(f, str) and (os.path.isabs(f) or isinstance(root, str) and os.path.isabs(root)):
                paths[f] = os.path.join(root, f) if not os.path.isabs(f) else f
    return paths


def kept_nothing(sources: dict[str, dict], shard_count: int = 1, listing: dict[str, list] | None = None,
                 wide: dict[str, dict[str, int]] | None = None, merged: bool = False,
                 paths: dict[str, str | Path] | None = None) -> tuple[list[str], list[str]]:
    """(errors, warnings) about a manifest's `sources` accounting: a line per source that read records and kept
    none, naming its main reasons. Every record rejected (bad input: almost surely a wrong text_field,
    chat_layout or fields) is an error, as is an unsharded output of no token at all; a source whose records
    filters or dedup dropped (some or all) is a warning: those are the user's choices. A source that read
    nothing (no record in its files, or none of its files in this shard) is neither.

    In a shard (`shard_count` > 1), a source's rejections are an error only when the shard holds all of its
    files (`listing`: the unsharded input's files per source, `input_listing`): one holding some of them is a
    warning, since the files of other shards may keep records, as the unsharded run would (a source of two
    files, one of them all `missing_field`: prepare keeps the other's records, and its shard 1/2 was refused).

    NOTE: such a source silently left the mix: `steel data prepare` exited 0, its only trace per-record
    warnings at the top of a long log (a ShareGPT file under the default alpaca layout: 500 of 500 records
    `missing_field`, "wrote 0 chunks, 0 tokens").

    `wide`: per source, its `invalid_utf8` rejections of UTF-16/32 files per (encoding, decompressor, new file
    name: `wide_pipeline_of`; "" and "" for a plain file), as prepare counts them
    (None: not known, as in a merge or `steel data inspect`); a source absent had none. `merged`: the accounting
    is that of some shards of `shard_count` merged (`steel data merge --allow-missing`), not of one.
    `paths`: where the files the sources name are now (name -> path), to tell which are compressed (`_converts`).
    """
    errors, warnings = [], []
    for name, s in sources.items():
        read, kept = s["read"], s["kept"]
        if read == 0 or kept > 0:
            continue
        rejected = sum(s["rejected"].values())
        reasons = sorted(((v, k) for k, v in (s["filtered"] | s["rejected"]).items() if v), reverse=True)
        why = ", ".join(f"{k} {v:,}" for v, k in reasons[:3]) + (", ..." if len(reasons) > 3 else "")
        hint = _HINTS.get(s.get("kind", "text"), _HINTS["text"])
        only = {k for k, v in s["rejected"].items() if v}
        if len(only) == 1 and next(iter(only)) in _REASON_HINTS:
            hint = _REASON_HINTS[next(iter(only))]
            if only == {"invalid_utf8"}:
                hint = _utf8_hint(None if wide is None else wide.get(name, {}), s["rejected"]["invalid_utf8"],
                                  s.get("files") or (), paths)
        if rejected == read:
            whole = len(listing.get(name, ())) if listing is not None else None
            if shard_count > 1 and (whole is None or len(s.get("files", ())) < whole):
                held = f"{len(s['files']):,} of its {whole:,} files" if whole is not None else "some of its files"
                part = "the merged shards rejected ({}), which hold" if merged else "this shard rejected ({}), which holds"
                warnings.append(f"source {name!r}: all {read:,} records of {part.format(why)} {held}; if the other "
                                f"shards keep none either, {hint}")
            else:
                errors.append(f"source {name!r}: all {read:,} records rejected ({why}); {hint}")
        else:
            warnings.append(f"source {name!r}: kept none of its {read:,} records ({why}), it adds nothing to the "
                            "mix" + (f"; for the {rejected:,} rejected, {hint}" if rejected else
                                     "; its filters or dedup dropped them all"))
    if not errors and shard_count == 1 and not any(s["kept"] for s in sources.values()):
        read = sum(s["read"] for s in sources.values())
        errors.append(f"no document kept of the {read:,} records read (see the warnings above): 0 tokens" if read else
                      "the sources' files hold no records: 0 tokens")
    return errors, warnings


def warn_identical_chunks(chunks: list[dict], log: logging.Logger) -> None:
    """Warn about chunks of one output that are byte-identical (same head/tail MD5), naming them.

    NOTE: `steel train` tells chunks apart by that MD5 (their identity in a run's state) and refuses a data
    dir holding one twice ("a copy of a data dir?"). With dedup off, two sources with the same documents in
    the same order (a file and its .zst copy, a copy made to upweight it) give such chunks; the prepare
    succeeded and the training run refused the data at its start."""
    first: dict[str, dict] = {}
    same = [(first[c["md5"]], c) for c in chunks if first.setdefault(c["md5"], c) is not c]
    if same:
        (a, b), more = same[0], f" (and {len(same) - 1} more pairs)" if len(same) > 1 else ""
        log.warning("chunks %s (source %s) and %s (source %s) are identical%s: their documents are the same, in the "
                    "same order, and `steel train` refuses a data dir holding a chunk twice; turn dedup.exact on, or "
                    "read the files once and give their source a `weight`", a["file"], a.get("source"), b["file"],
                    b.get("source"), more)


class _sigterm_as_interrupt:
    """SIGTERM in the main process raises KeyboardInterrupt, so a `kill` takes the same cleanup path as
    Ctrl-C (the open chunks' temp files removed, workers terminated; `steel: interrupted`, status 130).

    Only in the main thread of the process that entered (a forked child dies as SIGTERM would); the
    previous handler is restored on exit.
    """

    def __enter__(self):
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.pid = os.getpid()
            self.prev = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        if os.getpid() != self.pid:  # a forked child that did not reset the handler
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        if self.installed:  # (None: a handler not set from Python; the default is the best stand-in)
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.prev is None else self.prev)
        return False


class _signals_held:
    """SIGINT and SIGTERM wait until the block is done (in the main thread; elsewhere a no-op): for the swap of a
    finished output into OUT. A signal there raised KeyboardInterrupt between the previous output's deletion and
    the new manifest: neither output was left, and training refused the directory. The run then finishes (the
    swap takes a fraction of a second) and logs that the signal came too late to stop it.
    """

    def __enter__(self):
        self.got: list[int] = []
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.prev = {s: signal.signal(s, lambda signum, frame: self.got.append(signum))
                         for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        if self.installed:
            for s, h in self.prev.items():
                signal.signal(s, signal.SIG_DFL if h is None else h)
        return False


def swap_finished_output(out_dir: Path, stage: Path, manifest: dict, previous: list[str], tokenizer: str | None,
                         replaced: int, done: str, what: str, log: logging.Logger,
                         by: str = "steel data prepare") -> None:
    """The last step of prepare and merge: the output staged in `stage` moved into OUT (`swap_in`) with SIGINT and
    SIGTERM held from the previous output's deletion to the new manifest; `done` is what a signal after it reports
    (the output is complete); `replaced`: the previous output's chunk count, `what`: "run" or "merge".
    NOTE: a kill -9 or power loss in the swap leaves its journal: the next reader of OUT finishes it."""
    with _signals_held() as held:
        swap_in(out_dir, stage, lambda d: write_manifest(d, manifest), previous, tokenizer, log, by=by)
        done_so_far(done)
    if replaced:
        log.info("replaced the previous output in %s (%d chunks)", out_dir, replaced)
    if held.got:
        log.warning("%s came while the finished output was moved into %s: it is complete, the %s ends normally",
                    signal.Signals(held.got[0]).name, out_dir, what)


def _chunk_pattern(prefixes: list[str]) -> re.Pattern:
    """Names `ChunkSink` gives its chunk files (and their temp files) for these prefixes."""
    alts = "|".join(re.escape(p) for p in prefixes)
    return re.compile(rf"(?:{alts})-\d{{5,}}\.bin(?:\.tmp)?")


def _previous_chunks(out_dir: Path) -> list[str]:
    """Chunk files the directory's current manifest lists ([] without one); an unreadable one is an error."""
    if not (out_dir / MANIFEST).exists():
        return []
    try:
        return [chunk_name(c["file"], out_dir / MANIFEST, i) for i, c in enumerate(read_manifest(out_dir)["chunks"])]
    except ValueError as e:
        raise ConfigError(f"output: {out_dir} holds an unreadable {MANIFEST} ({e}); remove it first") from None


def _clear_stale(out_dir: Path, log: logging.Logger, prefixes: list[str] = ()) -> None:
    """Remove what a killed run left: its staging directory, chunk temp files (`*.bin.tmp`), and chunk
    files named as this prepare names its own (`PREFIX-NNNNN.bin`, PREFIX = source name + shard tag) that
    no manifest lists (a Steel from before staging, killed before writing its manifest). Other files, and
    the previous output (its manifest and chunks: replaced only once the new one is complete), are kept. A swap
    a killed run left half done is finished first (`steel.data.swap`); its journal is dropped when its output is
    gone (OUT/.partial/ removed by hand after a failed swap): this run makes OUT's output.
    """
    # before OUT/.partial/ goes: it may hold the complete output a killed swap left
    finish_swap(out_dir, log, rebuilding=True)
    shutil.rmtree(out_dir / STAGING, ignore_errors=True)
    listed = set(_previous_chunks(out_dir))
    stale = [p for p in out_dir.glob("*.bin.tmp") if p.is_file()] + [
        p for p in [out_dir / (MANIFEST + ".tmp"), out_dir / (JOURNAL + ".tmp")] if p.is_file()]
    if prefixes:
        own = _chunk_pattern(list(prefixes))
        stale += [p for p in out_dir.glob("*.bin") if own.fullmatch(p.name) and p.is_file() and p.name not in listed]
    for p in stale:
        p.unlink(missing_ok=True)
    for p in scratch_dirs(out_dir / "tokenizer"):  # a killed build or swap of OUT/tokenizer/
        shutil.rmtree(p, ignore_errors=True)
    if stale:
        log.info("removed %d files a previous, interrupted run left in %s (chunks no manifest lists, temp files)",
                 len(stale), out_dir)


def prepare(cfg: DataConfig, out_dir: str | Path, *, config_path: str | Path | None = None,
            shard: tuple[int, int] = (0, 1), encoder=None, log: logging.Logger | None = None,
            quiet: bool | None = None) -> dict:
    """Run the pipeline; returns the manifest (also written to OUT/manifest.json).

    SIGTERM is handled like Ctrl-C (KeyboardInterrupt; the caller prints `steel: interrupted`, status 130).
    """
    from steel.dirlock import dir_lock

    # NOTE: the lock comes first: a second prepare into OUT is refused before it touches OUT/.partial/,
    # which is the running one's.
    with _sigterm_as_interrupt(), dir_lock(out_dir, "steel data prepare"):
        try:
            return _prepare(cfg, out_dir, config_path=config_path, shard=shard, encoder=encoder, log=log,
                            quiet=quiet)
        except BaseException:
            # the previous output stays as it was; once the swap's journal is written, the staged output is the
            # one OUT gets (an error in the swap: the next reader finishes it)
            log_left(Path(out_dir), Path(out_dir) / STAGING, log or logging.getLogger("steel"))
            raise


def _prepare(cfg: DataConfig, out_dir: str | Path, *, config_path: str | Path | None = None,
             shard: tuple[int, int] = (0, 1), encoder=None, log: logging.Logger | None = None,
             quiet: bool | None = None) -> dict:
    from steel.runlog import environment_report, progress_bar

    log = log or logging.getLogger("steel")
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = cfg.resolve_root(config_path)
    # relative: as root is; checked before any work (a given encoder is the caller's)
    tok_spec = cfg.resolve_tokenizer(config_path, check=encoder is None)
    names = [s.name for s in cfg.sources]
    # Blocklist files and words, normalized as in the workers: fail before any work (a ConfigError in a
    # pool initializer is no error: multiprocessing respawns the worker forever)
    build_filters(cfg.filters, names, root, setup=True, normalize=Normalizer(cfg.normalize))

    files: list[tuple[int, Path, str]] = []
    # Input files outside the root named relative to the working directory (`root: data`, `path: ../x.jsonl`) or
    # through a link (`/mnt/link/x.jsonl`): their resolved paths, for `inputs.elsewhere` (the loader tells two dirs
    # of the same files apart by them; names under the root are relative to the resolved root already).
    elsewhere: dict[str, str] = {}
    for i, src in enumerate(cfg.sources):
        for p in expand_paths(src, root, i):
            try:
                rel = str(p.resolve().relative_to(root.resolve()))
            except ValueError:
                rel = str(p)
                if str(p.resolve()) != rel:
                    elsewhere[rel] = str(p.resolve())
            files.append((i, p, rel))
    check_formats(cfg, files)
    check_overlaps(cfg, files, log)
    # A document's place in the unsharded input (file index, record ordinal): merge keeps, of the
    # exact duplicates across shards, the copy an unsharded run would have kept.
    file_index = {f: k for k, f in enumerate(files)}
    # NOTE: sizes are read once: the split and the recorded listing must come from the same numbers.
    sizes = file_sizes(files)
    inputs_digest, listing = input_listing(files, sizes, names)
    files = assign_shard(files, *shard, sizes=sizes)
    heads = file_heads(files)
    tag = f".shard{shard[0]:03d}of{shard[1]:03d}" if shard[1] > 1 else ""
    _clear_stale(out_dir, log, [f"{name}{tag}" for name in names])
    # NOTE: chunks and sidecars are written to OUT/.partial/ and moved in at the end, so an interrupted
    # rerun leaves the previous output (manifest + chunks) as it was.
    stage = out_dir / STAGING
    stage.mkdir()

    workers = cfg.workers
    loaded_own = encoder is None
    if encoder is None:
        from steel.data.tokenize import load_data_encoder

        # NOTE: one tokenizer thread per worker process; the processes are the parallelism.
        # NOTE: a `qwen` build goes into the stage: OUT/tokenizer/ is replaced with the output, in the swap.
        encoder = load_data_encoder(tok_spec, out_dir, num_threads=1 if workers > 1 else None, log=log, stage=stage)
    log.info("tokenizer: %s (vocab %d, eos %d, fingerprint %s)", getattr(encoder, "engine", type(encoder).__name__),
             encoder.vocab_size, encoder.eos_id, encoder.fingerprint[:16])
    if any(s.kind == "chat" for s in cfg.sources):  # before any reading, not at the first chat record
        from steel.data.chat import IM_END, IM_START
        from steel.data.tokenize import missing_chat_marker

        for marker in (IM_START, IM_END):
            if marker not in encoder.special_ids:
                raise missing_chat_marker(encoder, marker)

    spec = WorkerSpec(cfg.normalize, cfg.filters, str(root), cfg.dedup, names, [s.kind for s in cfg.sources])
    stats = [SourceStats() for _ in cfg.sources]
    dedup_keys = [k for k, on in (("dedup_exact", cfg.dedup.exact), ("dedup_near", cfg.dedup.near)) if on]
    flts = build_filters(cfg.filters, names)
    for i, src in enumerate(cfg.sources):
        stats[i].filtered = {f.key: 0 for f in flts if f.applies(src.name, src.kind)} | {k: 0 for k in dedup_keys}
    sinks = [ChunkSink(stage, f"{s.name}{tag}", cfg.chunk_tokens, encoder.vocab_size, encoder.fingerprint)
             for s in cfg.sources]
    deduper = Deduper(cfg.dedup) if dedup_keys else None
    # documents.npy columns, 22 bytes per kept document (array('Q') etc. hold them unboxed)
    doc_cols = (array("Q"), array("Q"), array("I"), array("H")) if cfg.dedup.exact else None
    logged: Counter = Counter()
    # source -> its invalid_utf8 rejections of UTF-16/32 files, per (encoding, decompressor, new file name)
    wide: dict[str, Counter] = {}

    def reject(i: int, file: str, line: int, reason: str, detail: str) -> None:
        st = stats[i]
        st.rejected[reason] = st.rejected.get(reason, 0) + 1
        enc = wide_encoding_of(detail) if reason == "invalid_utf8" else None
        if enc is not None:  # (for the hint, should the source keep nothing)
            wide.setdefault(names[i], Counter())[(enc, *(wide_pipeline_of(detail) or ("", "")))] += 1
        key = (i, reason)
        if logged[key] < cfg.log_examples:
            logged[key] += 1
            log.warning("%s: %s:%d rejected (%s): %s", names[i], file, line, reason, detail[:200])
            if logged[key] == cfg.log_examples:
                log.warning("%s: further %r rejections are counted, not logged", names[i], reason)

    def consume(meta: list[tuple[int, str, int, int]], result) -> None:
        statuses, hashes, sigs, tokens, lengths = result
        k = off = 0
        for (i, file, line, order), status in zip(meta, statuses):
            st = stats[i]
            if status is None:
                n = int(lengths[k])
                doc_tokens = tokens[off : off + n]
                h = hashes[k] if hashes is not None else None
                dropped = deduper.check(h, sigs[k] if sigs is not None else None) if deduper else None
                off += n
                k += 1
                if dropped:
                    st.filtered[dropped] += 1
                else:
                    st.kept += 1
                    st.tokens += n
                    sinks[i].write(doc_tokens)
                    if doc_cols is not None:
                        for col, v in zip(doc_cols, (h, order, n, i)):
                            col.append(v)
            elif status.startswith("f:"):
                st.filtered[status[2:]] += 1
            else:
                reject(i, file, line, status[2:], "after normalization")

    total_bytes = sum(sizes[f] for f in files)

    pool = None
    if workers > 1:
        methods = mp.get_all_start_methods()
        # NOTE: fork shares the loaded encoder with the workers at no cost; spawn would rebuild it (~1 s each).
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        # NOTE: not multiprocessing.Pool: a worker that died (OOM-killed) lost its batch and the run waited for
        # it forever, and Pool.terminate() then hung too (Ctrl-C and SIGTERM did not end the run).
        # ProcessPoolExecutor fails every pending batch with BrokenProcessPool instead.
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(spec, encoder))
        # NOTE: the executor forks its workers at the first submit: made here, before the progress bar's refresh
        # thread and the readers' (Arrow's pools) start, as multiprocessing.Pool did. A fork while another thread
        # holds a lock (stderr's, an allocator's) leaves that lock held forever in the worker.
        pool.submit(int)
        inline = None
    else:
        inline = DocProcessor(spec, encoder)
    pending: deque = deque()
    procs: list = _worker_processes(pool) if pool is not None else []  # the worker processes
    chars_read = 0
    try:
        with progress_bar("prepare", total=total_bytes or None, unit="bytes", disable=quiet) as advance:
            batch: list[tuple[int, Any]] = []
            meta: list[tuple[int, str, int, int]] = []
            batch_chars = 0

            def flush():
                nonlocal batch, meta, batch_chars
                if not batch:
                    return
                if pool is None:
                    consume(meta, inline.process(batch))
                else:
                    try:
                        future = pool.submit(_process_batch, batch)
                    except BrokenProcessPool as e:  # a worker died: reported, in order, by `_batch_result`
                        future = Future()
                        future.set_exception(e)
                    pending.append((meta, future))
                    procs[:] = _worker_processes(pool) or procs  # (spawn, without fork: started one by one)
                    while len(pending) >= 2 * workers:
                        m, r = pending.popleft()
                        consume(m, _batch_result(r, [m] + [pm for pm, _ in pending], procs))
                batch, meta, batch_chars = [], [], 0

            for i, path, rel in files:
                src = cfg.sources[i]
                reader = SourceReader(src, cfg, progress=advance)
                order = file_index[(i, path, rel)] << 32
                for item in reader.read_file(path):
                    stats[i].read += 1
                    order += 1
                    if item.doc is None:
                        reject(i, rel, item.line, item.reason, item.detail)
                        continue
                    n = len(item.doc) if isinstance(item.doc, str) else sum(len(m["content"]) for m in item.doc)
                    if n > cfg.max_doc_chars:
                        reject(i, rel, item.line, "too_large", f"{n:,} characters > max_doc_chars")
                        continue
                    chars_read += n
                    batch.append((i, item.doc))
                    meta.append((i, rel, item.line, order))
                    batch_chars += n
                    if batch_chars >= cfg.batch_chars:
                        flush()
            flush()
            while pending:
                m, r = pending.popleft()
                consume(m, _batch_result(r, [m] + [pm for pm, _ in pending], procs))
        for s in sinks:
            s.close()
    except BaseException:
        for s in sinks:
            s.abort()
        raise
    finally:
        if pool is not None:
            _stop_workers(pool, procs or _worker_processes(pool))

    chunks = []
    for src, sink in zip(cfg.sources, sinks):
        for name, n in sink.files:
            chunks.append({"file": name, "tokens": n, "md5": head_tail_md5(stage / name), "source": src.name})
    warn_identical_chunks(chunks, log)
    sources = {}
    for src, st in zip(cfg.sources, stats):
        total = st.kept + sum(st.filtered.values()) + sum(st.rejected.values())
        assert st.read == total, f"accounting bug in source {src.name}: read {st.read} != {total}"
        sources[src.name] = {"read": st.read, "kept": st.kept, "filtered": st.filtered,
                             "rejected": dict(sorted(st.rejected.items())), "weight": src.weight,
                             "kind": src.kind, "tokens": st.tokens,
                             "files": [rel for i, _, rel in files if cfg.sources[i] is src]}
    dedup_info: dict[str, Any] = {"exact": cfg.dedup.exact, "near": cfg.dedup.near}
    if deduper is not None:
        # The Unicode data of NFC/NFKC and casefold, which the hashes and signatures are computed after: it is
        # Python's (3.11: 14.0.0, 3.13: 15.1.0), and merge compares hashes from shards made under other Pythons.
        dedup_info |= {"bands": deduper.bands, "rows": deduper.rows, "indexed_docs": deduper.count,
                       "unicode": unicodedata.unidata_version}
        if cfg.dedup.near:  # merge --near compares stored signatures: they must come from the same permutations
            dedup_info["minhash"] = MinHasher.SCHEME
        if doc_cols is not None:
            docs = np.empty(len(doc_cols[0]), DOCUMENTS_DTYPE)
            for name, col in zip(DOCUMENTS_DTYPE.names, doc_cols):
                docs[name] = np.frombuffer(col, dtype=col.typecode) if len(col) else 0
            np.save(stage / DOCUMENTS, docs)
            dedup_info["documents_file"] = DOCUMENTS
            if cfg.dedup.near and shard[1] > 1:  # for `merge --near`; the near index holds the kept docs, in order
                assert deduper.count == len(docs), (deduper.count, len(docs))
                np.save(stage / SIGNATURES, deduper.sigs[: deduper.count])
                dedup_info["signatures_file"] = SIGNATURES
    for name, s in sources.items():
        log.info("%s: read %d kept %d tokens %d filtered %s rejected %s", name, s["read"], s["kept"], s["tokens"],
                 {k: v for k, v in s["filtered"].items() if v}, s["rejected"])
    errors, warnings = kept_nothing(sources, shard[1], listing, wide, paths={rel: p for _, p, rel in files})
    for w in warnings:
        log.warning("%s", w)
    if errors:  # before the output is replaced: the previous one (if any) stays as it was
        raise UserError("; ".join(errors) + f"; nothing written to {out_dir} (a previous output there is kept)")
    elapsed = time.perf_counter() - t0
    manifest = {
        "total_tokens": sum(c["tokens"] for c in chunks),
        "chunks": chunks,
        "tokenizer": {"fingerprint": encoder.fingerprint, "vocab_size": encoder.vocab_size, "eos_id": encoder.eos_id,
                      "engine": getattr(encoder, "engine", None), "spec": tok_spec}
        # a relative spec is relative to this process's working directory: `tokenizer_dir_for` tries this too
        | ({"dir": os.path.abspath(tok_spec)} if tok_spec != "qwen" else {}),
        "sources": sources,
        "shard": {"index": shard[0], "count": shard[1]},
        # The whole unsharded input (`input_listing`): merge compares the shards' digests and says which files
        # differ from the listing (names relative to `root`, and sizes). `root` is the resolved absolute root
        # (`config.root` is as given, often relative to the working directory then): with the sizes, the loader
        # refuses two data dirs prepared from one file (a re-prepare with one more file has another digest).
        # NOTE: unsharded outputs had no listing (only `sources.*.files`): a re-prepare was caught by its digest only.
        "inputs": {"digest": inputs_digest, "root": str(root.resolve()), "files": listing}
        | ({"elsewhere": elsewhere} if elsewhere else {}),
        # The files read (`sources.*.files`) -> [digest, length] of their first `bytes` bytes once decompressed, fewer
        # for a smaller file (`file_heads`). NOTE: an older Steel recorded the digest alone, of the file's own bytes.
        "input_heads": {"bytes": HEAD_BYTES,
                        "files": {rel: list(h) for (_, _, rel), h in heads.items() if h is not None}},
        "dedup": dedup_info,
        "config": to_dict(cfg) | {"root": str(root), "tokenizer": tok_spec},
        "stats": {"seconds": round(elapsed, 3), "chars_read": chars_read, "input_bytes": total_bytes},
        "environment": environment_report(),
    }
    old_chunks = _previous_chunks(out_dir)
    previous = old_chunks + [n for n in (DEDUP_HASHES, DOCUMENTS, SIGNATURES) if (out_dir / n).exists()]
    # A tokenizer/ of an earlier output with another tokenizer goes: it would be taken to decode these ids (with
    # Qwen's loaded here, OUT/tokenizer/ is the one the encoder was loaded from, or the staged one replaces it).
    tokenizer = None if loaded_own and cfg.tokenizer == "qwen" else encoder.fingerprint
    swap_finished_output(out_dir, stage, manifest, previous, tokenizer, len(old_chunks),
                         f"the output was complete: {out_dir} holds the new output ({len(chunks)} chunks, "
                         f"{manifest['total_tokens']:,} tokens); nothing to run again", "run", log)
    log.info("wrote %d chunks, %d tokens to %s in %.1f s", len(chunks), manifest["total_tokens"], out_dir, elapsed)
    return manifest
