"""Pretraining batches from prepared data directories, resumable to the exact sample.

A sample is a window of `seq_len + 1` tokens inside one chunk (windows overlap by one token, so every
token of a chunk except the last is a prediction target once). Chunks are registered in a run by the
MD5 of their head and tail (`steel.data.chunks.head_tail_md5`), not by path: moving a data directory
does not break a resume, a chunk added twice under two names is refused (naming both files), and a
chunk that changed since it was registered is refused at resume.

Each scan (fresh start, resume, `add_data`, the annealing dirs) also reads every listed chunk's 128-byte
header and refuses a chunk whose token count, tokenizer fingerprint (the header keeps its first 64
characters) or vocabulary size differs from its manifest entry: an edited or corrupt manifest is caught
at startup, not hours in (a wrong token count would read the wrong windows or crash in `read_samples`).

Two data dirs prepared from the same input files hold the same documents whatever their chunk bytes
(another `chunk_tokens`, filters or normalization): such a pair in one run is refused too
(`check_distinct_inputs`), from what the manifests record (`dir_inputs`). A file that grew between the two
prepares (the same path and first bytes once decompressed, another size) is the same file; the input files are
read only to tell that of a file under 64 KB at one of the prepares (`same_start`).

Per-source mixture weights (the manifest's `sources[name]["weight"]`, or `weights:` in the config)
scale how many times a source's samples appear per epoch: a chunk with `s` windows and weight `w`
contributes `round(w * s)` *virtual* samples, virtual `v` reading window `v * s // round(w * s)`
(weight 2 repeats each window twice, 0.5 takes every other window).

So a chunk shorter than `seq_len + 1` tokens gives no sample, nor does one whose `w * s` rounds to 0,
and the tail of a chunk after its last window is never read. Nothing about which samples exist
changes with that (resume depends on it), but registration says so: a WARNING per source with chunks
that give no sample, or with more than 1% of its tokens in no window, and a data dir that gives no
sample at all is refused (`check_dirs_give_samples`).

The order is `steel.data.order.EpochOrder`: the state is `{seed, epoch, consumed, segments, chunks}`,
small JSON, and the batches are recomputed. Rank `r` of `W` reads global positions
`consumed + r, consumed + r + W, ...`, so the global batch does not depend on `W` and a resume with
another world size re-splits the remaining samples exactly.

The Trainer's data protocol (also met by the SFT data): `next_batch()` returns a dict with
`input_ids` (B, T) and either `labels` (B, T, HF convention: the trainer shifts) or `shift_labels`
(B, T, already shifted: `shift_labels[:, t]` is the target after `input_ids[:, t]`), -100 = ignored;
`state_dict()` -> small JSON-able dict; `load_state_dict(state)`.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from steel.data.chunks import (
    ChunkFormatError,
    check_headers,
    head_tail_md5,
    read_chunk,
    read_manifest,
)
from steel.data.order import EpochOrder, derive_key

log = logging.getLogger("steel")

STATE_VERSION = 1


class DataError(ValueError):
    """Data that cannot be used as asked (duplicate, changed or missing chunk, mixed tokenizers); names files."""


@dataclass
class ChunkRecord:
    md5: str  # head/tail MD5: the chunk's identity in a run
    file: str  # path where it was found (for messages; not used to identify it)
    source: str  # source name from the manifest
    tokens: int  # tokens in the chunk
    count: int  # virtual samples it contributes per epoch (windows x weight)


@dataclass
class _Available:
    md5: str
    path: Path
    source: str
    tokens: int
    weight: float
    dir: Path | None = None  # the data dir whose manifest lists it (for messages)


@dataclass(frozen=True)
class DirInputs:
    """What a data dir was prepared from, as its manifest records it (`steel data prepare`, `merge`)."""

    dir: Path
    digest: str | None  # inputs.digest: the whole unsharded input listing (source names, file names, sizes)
    names: dict[str, str]  # sources[*].files: file name relative to the prepare's root -> source name
    paths: dict[str, str]  # the same files by absolute path (where the root or the name is absolute) -> name
    sizes: dict[str, int]  # absolute path -> size, where the manifest lists them (inputs.files)
    md5s: frozenset[str]  # its chunks
    # absolute path -> (digest, length) of its first `length` bytes once decompressed, `length` <= `head_bytes`
    heads: dict[str, tuple[str, int]] = field(default_factory=dict)
    head_bytes: int | None = None  # input_heads.bytes (None: the manifest records no heads, an older Steel's)


def dir_inputs(d: Path, manifest: dict, md5s=()) -> DirInputs:
    """`d`'s input files from its manifest (a manifest that records none, e.g. an older Steel's: none).

    The root is `inputs.root` (the resolved absolute root), else, for a manifest without it (an older Steel's),
    `config.root` when absolute; `inputs.elsewhere` names the files outside the root by absolute path.
    """
    inputs = manifest.get("inputs") or {}
    root = inputs.get("root")
    if not (isinstance(root, str) and os.path.isabs(root)):
        root = (manifest.get("config") or {}).get("root")
    root = root if isinstance(root, str) and os.path.isabs(root) else None
    elsewhere = inputs.get("elsewhere")
    elsewhere = elsewhere if isinstance(elsewhere, dict) else {}
    names: dict[str, str] = {}
    for source, s in (manifest.get("sources") or {}).items():
        files = s.get("files") if isinstance(s, dict) else None
        for f in files if isinstance(files, list) else ():
            if isinstance(f, str):
                names.setdefault(f, source)

    def absolute(name: str) -> str | None:
        # NOTE: a relative root (`root: data`, or none: the config's directory) was relative to the prepare's
        # working directory, which an older Steel's manifest does not record: those files have no absolute path.
        if isinstance(elsewhere.get(name), str) and os.path.isabs(elsewhere[name]):
            return os.path.normpath(elsewhere[name])
        if os.path.isabs(name):
            return os.path.normpath(name)
        return os.path.normpath(os.path.join(root, name)) if root is not None else None

    # NOTE: each absolute path is made once, for `paths` and `sizes`: ~20 MB here for a listing of 100k files
    made = {n: absolute(n) for n in names}
    paths = {p: n for n, p in made.items() if p is not None}
    sizes: dict[str, int] = {}
    listing = inputs.get("files")
    for entries in listing.values() if isinstance(listing, dict) else ():
        for e in entries if isinstance(entries, list) else ():
            if isinstance(e, list) and len(e) == 2 and isinstance(e[0], str):
                if (p := made[e[0]] if e[0] in made else absolute(e[0])) is not None:
                    sizes[p] = e[1]
    digest = inputs.get("digest")
    recorded = manifest.get("input_heads") if isinstance(manifest.get("input_heads"), dict) else {}
    head_bytes, listed = recorded.get("bytes"), recorded.get("files")
    head_bytes = head_bytes if isinstance(head_bytes, int) and head_bytes > 0 else None
    heads: dict[str, tuple[str, int]] = {}
    for n, h in listed.items() if isinstance(listed, dict) and head_bytes is not None else ():
        if (p := made.get(n)) is None:
            continue
        if isinstance(h, list) and len(h) == 2 and isinstance(h[0], str) and isinstance(h[1], int) \
                and 0 < h[1] <= head_bytes:
            heads[p] = (h[0], h[1])
        elif isinstance(h, str) and sizes.get(p, 0) >= head_bytes:
            # An older Steel's: the digest alone, of the file's own first `head_bytes` bytes (compressed or not); it
            # was compared only where both prepares read at least that many, as it still is.
            heads[p] = (h, head_bytes)
    return DirInputs(Path(d), digest if isinstance(digest, str) else None, names, paths, sizes, frozenset(md5s),
                     heads, head_bytes)


def shared_inputs(a: DirInputs, b: DirInputs) -> tuple[str, list[str]] | None:
    """(how, the input files of `a` that `b` read too) when the two dirs hold the same documents, else None.

    The same file: with one input digest (the same listing of names and sizes: one input, maybe copied
    under another root), the same name relative to the root; else the same absolute path (and size, where
    both manifests list sizes). Shards of one prepare (`--shard I/N`) share the digest but read disjoint
    files: not shared; a `merge` output shares its shards' files.
    """
    if a.digest is not None and a.digest == b.digest:
        common = [n for n in a.names if n in b.names]
        if common:
            return f"one input listing: equal inputs.digest {a.digest[:12]}...", common
    common = [p for p in a.paths if p in b.paths and a.sizes.get(p, b.sizes.get(p)) == b.sizes.get(p, a.sizes.get(p))]
    if common:
        return "the same paths", common
    # NOTE: a file that grew between the prepares (records appended: a crawl, a log) has another size: it was taken
    # for another file, and its documents of the first prepare were trained twice. Its first bytes tell it
    # (`same_start`).
    if a.head_bytes is not None and a.head_bytes == b.head_bytes:
        grown = [p for p in a.paths if p in b.paths and p in a.sizes and p in b.sizes and p in a.heads
                 and p in b.heads and same_start(p, a.heads[p], b.heads[p])]
        if grown:
            return GROWN, grown
    return None


def same_start(path: str, a: tuple[str, int], b: tuple[str, int]) -> bool:
    """Whether two prepares' heads of `path` ((digest, length) of the first bytes of its text,
    `sources.comparable_head`, `prepare.file_heads`) are of one text, the shorter the start of the longer: equal digests of one length; of
    two lengths (a file under 64 KB at a prepare), the file's first bytes now give both digests.

    NOTE: a digest of the first 64 KB alone did not tell a file that was under 64 KB at a prepare (its head was all
    of it, so the head of the grown file differed); the file is read here for those only (at most 64 KB each), and
    a file not on this machine is not told."""
    if a[1] == b[1]:
        return a[0] == b[0]
    from steel.data.sources import comparable_head

    (short, n), (long, m) = sorted((a, b), key=lambda h: h[1])
    try:
        with open(path, "rb") as f:
            now = comparable_head(f, m)
    except OSError:
        return False
    return (len(now) == m and hashlib.blake2b(now[:n], digest_size=8).hexdigest() == short
            and hashlib.blake2b(now, digest_size=8).hexdigest() == long and _holds_records(path, now[:n]))


def _holds_records(path: str, text: bytes) -> bool:
    """Whether `text` (all of the file at `path` once decompressed, at a prepare) may hold a record: a line other
    than blank, past the header line of a CSV/TSV.

    NOTE: a file that held none at its first prepare shares no document with a later one: a daily CSV export
    prepared right after it was created (its header line alone) was refused with the dir that read its rows. So was
    a JSON document of an empty array, whose head ends at its opening bracket (`sources.comparable_head`)."""
    if text.removeprefix(codecs.BOM_UTF8).lstrip().startswith((b"[", b"{")) and text.rstrip().endswith(b"["):
        return False
    lines = [line for line in text.splitlines() if line.strip()]
    name = path.lower().removesuffix(".gz").removesuffix(".zst")
    return len(lines) > (1 if name.endswith((".csv", ".tsv")) else 0)


GROWN = "the same paths, the files grown or cut since (the same first bytes, another size)"  # `shared_inputs`


def _appended_alone(path: str, small: int) -> str:
    """How to put the bytes of `path` after its first `small` in a file of their own, as its format allows.

    NOTE: `tail -c` alone was told for every file: a CSV's appended rows have no header line (the first of them was
    read as the header, every other row `missing_field`), and the bytes added to a JSON array, a parquet file or a
    compressed file rewritten whole are no file of that format."""
    name = path.lower()
    if name.endswith((".csv", ".tsv")):
        return (f"put its header line and its bytes after the first {small:,} in a file of another name "
                f"((head -n 1 FILE; tail -c +{small + 1} FILE) > NEW)")
    if name.endswith((".jsonl", ".txt")):
        return f"put its bytes after the first {small:,} in a file of another name (tail -c +{small + 1} FILE > NEW)"
    return "put the records added since in a file of another name"


def shared_pairs(new: list[DirInputs], old: list[DirInputs]):
    """(a, b, b is of `old`, how, files) for each dir `a` of `new` and an earlier dir `b` (of `old`, then of `new`)
    prepared from some of the same input files (`shared_inputs`), in that order."""
    # NOTE: indexed, not pairwise: with 1,000 dirs of 100 files each the pairs took 3 minutes (10k dirs: hours).
    # A dir is compared only with the earlier ones that name one of its files (by digest and name, or by absolute
    # path), in the order [*old, *new[:i]] as before, so the same pair and files are named.
    every = [*old, *new]
    if len(every) < 2 or not new:
        return
    resolved = [x.dir.resolve() for x in every]
    index: dict[object, list[int]] = {}
    for j, a in enumerate(every):
        keys = [*((a.digest, n) for n in a.names if a.digest is not None), *a.paths]
        near = sorted({k for key in keys for k in index.get(key, ())}) if j >= len(old) else []
        for key in keys:
            index.setdefault(key, []).append(j)
        for k in near:
            hit = shared_inputs(a, every[k]) if resolved[j] != resolved[k] else None
            if hit is not None:
                yield a, every[k], k < len(old), *hit


def check_distinct_inputs(new: list[DirInputs], old: list[DirInputs], warn: bool = False) -> None:
    """Refuse a dir of `new` that shares input files with another of `new` or one of `old` (already in the run).

    Their chunks differ (the head/tail MD5 check passes) when prepared with other settings, but the
    documents are the same, so every one would be trained twice per epoch. `warn=True` logs a WARNING
    instead (mid-run, at the annealing switch: the startup checks should refuse).
    """
    for a, b, in_run, how, files in shared_pairs(new, old):
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        source = a.names.get(a.paths.get(files[0], files[0]), next(iter(a.names.values()), "SOURCE"))
        where = "already in the run" if in_run else "also listed"
        msg = (f"data dir {a.dir} and data dir {b.dir} ({where}) were prepared from the same input files: "
               f"both read {shown} ({how}). They hold the same documents (chunks prepared with other settings "
               "such as chunk_tokens, filters or normalize differ, their documents do not), and every one "
               "would be trained twice per epoch. Give only one of them; to train a source more often, "
               f"give it a weight at the start of a run (data.weights: {{{source}: 2}}); to add new files, "
               "prepare them alone into a new dir")
        if how == "the same paths":
            msg += (f" (a file rewritten with other content since {b.dir} was prepared: prepare the new "
                    "content under another file name)")
        elif how == GROWN:
            p = files[0]
            small, large = sorted((a.sizes[p], b.sizes[p]))
            same = min(a.heads[p][1], b.heads[p][1])
            of = " once decompressed" if p.lower().endswith((".gz", ".zst")) else ""
            of = " of its rows (as JSON lines)" if p.lower().endswith(".parquet") else of
            msg += (f". {p} is {a.sizes[p]:,} bytes for {a.dir} and {b.sizes[p]:,} for {b.dir}, with the same first "
                    f"{same:,} bytes{of}: ")
            try:
                now = os.path.getsize(p)
            except OSError:  # (not on this machine)
                now = None
            if a.heads[p] == b.heads[p] and same < a.head_bytes:
                # NOTE: all of its text, the same at both prepares, in another number of bytes: a compressed file
                # recompressed (another level or tool). It was told cut (or grown), with the new bytes to prepare.
                msg += ("that is all of its text at both prepares, recompressed into another number of bytes, so all "
                        "its documents are in both dirs")
            elif now == small:
                # NOTE: the file holds the smaller size now: it was not grown since the larger was prepared, and the
                # tail of its bytes after the smaller size is empty (it said "it grew" and to prepare that tail).
                msg += (f"it is {small:,} bytes now, so it was cut or rewritten after its first {same:,} bytes{of} "
                        f"since the dir of {large:,} bytes was prepared. If cut, the documents of its {small:,} bytes "
                        f"are in both dirs: give only the dir prepared from all {large:,} bytes; if rewritten with other "
                        f"content, prepare the new content under another file name")
            else:
                msg += (f"it grew (records appended) between the two prepares, and the documents of its first "
                        f"{small:,} bytes are in both dirs. To train only what was added, {_appended_alone(p, small)} "
                        f"and prepare that alone into a new dir; or give only the dir prepared from all {large:,} bytes. "
                        f"If it was rewritten with other content after its first {same:,} bytes{of} instead, "
                        f"prepare the new content under another file name")
        if warn:
            log.warning("data: %s", msg)
        else:
            raise DataError(msg)


def num_windows(tokens: int, seq_len: int) -> int:
    """Windows of `seq_len + 1` tokens, overlapping by one, in a chunk of `tokens` tokens."""
    return max(0, (tokens - 1) // seq_len)


def chunk_samples(tokens: int, weight: float, seq_len: int) -> int:
    """Virtual samples a chunk contributes per epoch: its windows times its weight, rounded."""
    return round(weight * num_windows(tokens, seq_len))


def uncovered_tokens(tokens: int, weight: float, seq_len: int) -> int:
    """Tokens of a chunk that no sample reads: all without a sample, else the tail after the last window.

    (Windows skipped by a weight below 1 are not counted: that is the weight's intent, not a loss.)
    """
    if chunk_samples(tokens, weight, seq_len) == 0:
        return tokens
    return tokens - (num_windows(tokens, seq_len) * seq_len + 1)


def check_dirs_give_samples(
    chunks: list[_Available], dirs: list[str | Path], seq_len: int, warn: bool = False
) -> None:
    """Refuse data dirs none of whose chunks gives a sample (unless all their weights are 0: a choice).

    `warn=True` logs a WARNING instead (the annealing switch, mid-run: `scan_anneal_dirs` should
    refuse such a dir at startup).
    """
    bad = []
    for d in dirs:
        mine = [a for a in chunks if a.dir == Path(d)]
        if any(chunk_samples(a.tokens, a.weight, seq_len) for a in mine):
            continue
        if mine and all(a.weight == 0 for a in mine):  # weight 0 leaves the dir out on purpose
            continue
        longest = max((a.tokens for a in mine), default=0)
        bad.append(f"{d} ({len(mine)} chunks, {sum(a.tokens for a in mine):,} tokens, the longest {longest:,})")
    if bad:
        msg = (f"no sample of seq_len + 1 = {seq_len + 1} tokens in data dir(s) {'; '.join(bad)}: a sample is a "
               "window inside one chunk; prepare with larger chunk_tokens or more data, use a smaller seq_len, or "
               "leave the dir out")
        if warn:
            log.warning("data: %s", msg)
        else:
            raise DataError(msg)


def report_coverage(chunks: list[_Available], seq_len: int) -> None:
    """Log, per data dir and source, the chunks that give no sample and the tokens no sample reads.

    NOTE: reporting only; which samples exist (and their ids) must not change, or resume breaks.
    """
    groups: dict[tuple[str, str], list[_Available]] = {}
    for a in chunks:
        groups.setdefault((str(a.dir if a.dir is not None else a.path.parent), a.source), []).append(a)
    total = lost_total = 0
    for (d, source), group in groups.items():
        tokens = sum(a.tokens for a in group)
        lost = sum(uncovered_tokens(a.tokens, a.weight, seq_len) for a in group)
        total, lost_total = total + tokens, lost_total + lost
        zero = [a for a in group if chunk_samples(a.tokens, a.weight, seq_len) == 0]
        if not zero and lost * 100 <= tokens:
            continue
        why = []
        short = sum(num_windows(a.tokens, seq_len) == 0 for a in zero)
        if short:
            why.append(f"{short} shorter than seq_len + 1 = {seq_len + 1} tokens")
        if len(zero) > short:
            weights = sorted({a.weight for a in zero if num_windows(a.tokens, seq_len)})
            why.append(f"{len(zero) - short} whose windows x weight {', '.join(f'{w:g}' for w in weights)} "
                       "rounds to 0")
        head = (f"{len(zero)} of {len(group)} chunks give no sample ({'; '.join(why)}); " if zero
                else f"all {len(group)} chunks give samples, but ")
        log.warning("data: source %r in %s: %s%s of its %s tokens are in no sample%s", source, d, head,
                    f"{lost:,}", f"{tokens:,}", "" if zero else " (the chunk tails after the last window)")
    if total:
        log.info("data: %s of %s tokens registered are in no sample (%.2g%%: chunk tails, chunks shorter than "
                 "seq_len + 1)", f"{lost_total:,}", f"{total:,}", 100 * lost_total / total)


def unique_dirs(dirs) -> list[str]:
    """`dirs` without repeats (by resolved path), in first-seen order, first spelling kept."""
    seen: dict = {}
    for x in dirs:
        seen.setdefault(Path(x).resolve(), str(x))
    return list(seen.values())


def scan_data_dirs(dirs: list[str | Path], weights: dict[str, float] | None = None,
                   inputs: dict[Path, DirInputs] | None = None) -> tuple[list[_Available], dict]:
    """Read the manifests of `dirs`; check one tokenizer for all and no chunk twice. Returns (chunks, tokenizer).

    `inputs`: filled with each dir's `DirInputs`, by resolved path.
    """
    weights = weights or {}
    found: list[_Available] = []
    by_md5: dict[str, Path] = {}
    tokenizer: dict | None = None
    tok_dir: Path | None = None
    for d in dirs:
        d = Path(d)
        try:
            manifest = read_manifest(d)
        except ChunkFormatError as e:
            raise DataError(str(e)) from None
        tok = manifest["tokenizer"]
        if tokenizer is None:
            tokenizer, tok_dir = tok, d
        elif tok.get("fingerprint") != tokenizer.get("fingerprint"):
            raise DataError(
                f"{d}: tokenizer fingerprint {tok.get('fingerprint')!r} differs from {tok_dir}'s "
                f"{tokenizer.get('fingerprint')!r}; data prepared with different tokenizers cannot be mixed"
            )
        sources = manifest.get("sources", {})
        start = len(found)
        for i, c in enumerate(manifest["chunks"]):
            try:
                md5, name, tokens, source = c["md5"], c["file"], int(c["tokens"]), c.get("source", "")
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{d / 'manifest.json'}: chunks[{i}] lacks file/tokens/md5") from None
            path = d / name
            if md5 in by_md5:
                raise DataError(f"duplicate chunk: {path} has the same head/tail MD5 ({md5}) as {by_md5[md5]} "
                                "(a copy of a data dir? give only one of the two)")
            by_md5[md5] = path
            w = weights.get(source, sources.get(source, {}).get("weight", 1.0))
            w = 1.0 if w is None else float(w)
            if w < 0:
                raise DataError(f"{d}: source {source!r} has a negative weight {w}")
            found.append(_Available(md5, path, source, tokens, w, d))
        _check_headers(d, tok, found[start:])
        if inputs is not None:
            inputs[d.resolve()] = dir_inputs(d, manifest, (a.md5 for a in found[start:]))
    return found, tokenizer or {}


def _check_headers(d: Path, tok: dict, chunks: list[_Available]) -> None:
    """Refuse a chunk whose header disagrees with the manifest (tokens, fingerprint, vocab); names the file."""
    try:
        check_headers(d, tok, [(a.path, a.tokens) for a in chunks])
    except ChunkFormatError as e:
        raise DataError(f"{e}; the manifest does not describe this chunk (edited or corrupt?): prepare the "
                        "data again or restore the files") from None


class PretrainLoader:
    """Rank-local micro-batches of `seq_len + 1` windows in a keyed, resumable global order."""

    def __init__(
        self,
        dirs: list[str | Path],
        seq_len: int,
        micro_batch: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        weights: dict[str, float] | None = None,
        lookup_dirs: list[str | Path] = (),
        verify: bool = True,
        resume: bool = False,
    ):
        """`resume=True` (a resume, `load_state_dict` follows): dirs of `dirs` prepared from the same input files
        are judged there, against what the run drew from (`load_state_dict`), not refused here."""
        self.dirs = [Path(d) for d in dirs]
        self.lookup_dirs = [Path(d) for d in lookup_dirs]  # known (e.g. annealing) dirs, registered only on demand
        self.seq_len, self.micro_batch = seq_len, micro_batch
        self.rank, self.world_size = rank, world_size
        self.weights = dict(weights or {})
        self.verify = verify
        self.seed = seed
        self.epoch = 0
        self.consumed = 0  # positions of this epoch consumed, all ranks together
        self.active_base = 0  # first virtual id the epochs draw from (moves on a `replace` append)
        self.phases: list[str] = []  # names of mixture switches applied (annealing)
        self.extra_dirs: list[str] = []  # dirs added with `add_data` (looked up again at resume)
        self.chunks: list[ChunkRecord] = []
        self._offsets = np.zeros(1, dtype=np.int64)  # virtual id start of each chunk, + total
        self._maps: dict[int, np.ndarray] = {}
        self._vocab: dict[int, int] = {}  # chunk -> its header's vocabulary size (mapped chunks)
        self._min_vocab = 0  # the smallest of them: one comparison per batch
        self._paths: dict[int, Path] = {}
        self._verified: set[str] = set()  # md5s whose file was hashed in this process
        # md5 -> identity (device, inode, size, mtime) of the file hashed for it: a chunk is mapped lazily, on
        # the first batch that reads it, and a file put in its place since (a prepare rerun into the dir) is
        # hashed again then rather than read as the registered chunk
        self._hashed: dict[str, tuple[int, int, int, int]] = {}
        self.last_ids = np.zeros(0, dtype=np.int64)  # sample ids of the last batch (tests, debugging)
        self._inputs: dict[Path, DirInputs] = {}  # every dir scanned, by resolved path
        available, self.tokenizer = scan_data_dirs(self.dirs, self.weights, self._inputs)
        if not resume:
            check_distinct_inputs(self._dir_inputs(self.dirs), [])
        check_dirs_give_samples(available, self.dirs, seq_len)
        report_coverage(available, seq_len)
        self._available = {a.md5: a for a in available}
        self._register(available)
        if self.total == 0:
            raise DataError(f"no sample of {seq_len + 1} tokens in {', '.join(map(str, self.dirs))}")
        self.order = EpochOrder.fresh(0, self.total, derive_key(seed, 0, 0))

    # --- registry -----------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return int(self._offsets[-1])

    def mixture(self) -> dict[str, int]:
        """Samples per epoch by source (round(weight x windows) per chunk), of the chunks the next epochs draw
        from: what `data.weights` and the manifests' weights make of the prepared tokens."""
        out: dict[str, int] = {}
        for i, c in enumerate(self.chunks):
            if self._offsets[i] >= self.active_base:
                out[c.source] = out.get(c.source, 0) + c.count
        return out

    def _dir_inputs(self, dirs, read: bool = False) -> list[DirInputs]:
        """The `DirInputs` of the scanned dirs among `dirs` (one per resolved path, first spelling's).

        `read=True`: a dir not scanned yet has its manifest read (a missing one is a DataError).
        """
        out: dict[Path, DirInputs] = {}
        for d in dirs:
            key = Path(d).resolve()
            if key not in self._inputs and read:
                try:
                    m = read_manifest(d)
                except ChunkFormatError as e:
                    raise DataError(str(e)) from None
                self._inputs[key] = dir_inputs(Path(d), m, (c.get("md5") for c in m["chunks"] if isinstance(c, dict)))
            if key in self._inputs:
                out.setdefault(key, self._inputs[key])
        return list(out.values())

    def check_new_inputs(self, new_dirs, warn: bool = False) -> None:
        """Refuse dirs of `new_dirs` holding chunks new to the run whose inputs another dir drawn from has too.

        Called by `add_data` (not `replace`) and at a resume for new dirs of `data.dirs`; the trainer may call
        it at startup for annealing dirs of mode `mix` (reads their manifests). Dirs whose chunks are all
        registered are left alone (a resume with its dirs, `--add-data` given again: the run holds them
        already); after a `replace` switch the run draws from the dirs with chunks registered since only.
        """
        registered = {c.md5 for c in self.chunks}
        new = [x for x in self._dir_inputs(new_dirs, read=True) if not x.md5s <= registered]
        if not new:
            return
        active = {c.md5 for c, start in zip(self.chunks, self._offsets[:-1].tolist()) if start >= self.active_base}
        fresh = {x.dir.resolve() for x in new}
        old = [x for x in self._dir_inputs([*self.dirs, *self.extra_dirs])
               if x.dir.resolve() not in fresh and x.md5s & active]
        check_distinct_inputs(new, old, warn=warn)

    def _warn_inputs_in_run(self, registered: set[str]) -> None:
        """At a resume: warn of two dirs the run drew from (all their chunks registered) prepared from the same
        input files. A run started before Steel refused such a pair trains their documents twice per epoch; it
        goes on as it began: its order holds both dirs' samples, and without one of them the resume is refused
        (a registered chunk missing), so refusing the pair (as the constructor did) left it no way on."""
        # the dirs the run draws from now: after a `replace` switch, only those with chunks registered since (a
        # re-prepared copy of pretraining data annealed on in mode replace is no pair)
        active = {c.md5 for c, start in zip(self.chunks, self._offsets[:-1].tolist()) if start >= self.active_base}
        had = [x for x in self._dir_inputs([*self.dirs, *self.extra_dirs]) if x.md5s <= registered and x.md5s & active]
        for a, b, _, how, files in shared_pairs(had, []):
            shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
            log.warning("data: data dir %s and data dir %s, both in this run, were prepared from the same input "
                        "files: both read %s (%s), so the run trains their documents twice per epoch. It goes on "
                        "as it began (its data order holds both; without one of them it cannot resume); a new "
                        "run refuses the pair: give it only one of them", a.dir, b.dir, shown, how)

    def _register(self, chunks: list[_Available], again: bool = False) -> int:
        """Append `chunks` to the registry; `again=True` takes chunks already registered (new sample ids)."""
        known = {c.md5: c.file for c in self.chunks}
        start = self.total
        self._verify_all([(a.path, a.md5) for a in chunks], registered=False)
        for a in chunks:
            if a.md5 in known and not again:
                raise DataError(f"duplicate chunk: {a.path} has the same head/tail MD5 ({a.md5}) as {known[a.md5]}, "
                                "already in the run (a copy of a data dir? give only one of the two)")
            count = chunk_samples(a.tokens, a.weight, self.seq_len)
            rec = ChunkRecord(a.md5, str(a.path), a.source, a.tokens, count)
            self._paths[len(self.chunks)] = a.path
            self.chunks.append(rec)
            known[a.md5] = rec.file
        self._offsets = np.concatenate([[0], np.cumsum([c.count for c in self.chunks], dtype=np.int64)])
        return self.total - start

    def _verify_all(self, items: list[tuple[Path, str]], registered: bool = True) -> None:
        """Hash the head/tail of each chunk not yet checked in this process (I/O bound: 8 threads).

        `registered=False`: chunks being registered now (checked against their manifest MD5, not a run's).
        """
        todo = [(p, m) for p, m in items if m not in self._verified] if self.verify else []
        if not todo:
            return
        with ThreadPoolExecutor(8) as pool:
            idents = list(pool.map(lambda pm: self._check_file(*pm, registered=registered), todo))
        self._verified.update(m for _, m in todo)
        self._hashed.update((m, ident) for (_, m), ident in zip(todo, idents))

    @staticmethod
    def _check_file(path: Path, md5: str, registered: bool = True) -> tuple[int, int, int, int]:
        """Hash `path`'s head/tail against `md5`; returns the identity of the file hashed (`_identity`)."""
        try:
            before = _identity(path)
            actual = head_tail_md5(path)
        except OSError as e:
            raise DataError(f"{path}: cannot read chunk ({e.strerror})") from None
        if actual != md5:
            if registered:
                raise DataError(f"{path}: chunk changed since it was registered (head/tail MD5 {actual}, "
                                f"expected {md5})")
            raise DataError(f"{path}: chunk does not match its manifest MD5 (head/tail MD5 {actual}, manifest "
                            f"{md5}): rewritten after prepare? prepare the data again or restore the file")
        return before

    def add_data(self, dirs: list[str | Path], replace: bool = False, phase: str | None = None,
                 reuse: bool = False) -> int:
        """Register the chunks of `dirs` and merge their samples with the unconsumed rest of the epoch.

        `replace=True` drops the rest of the epoch instead (a mixture switch). A chunk already registered
        is skipped (the same file) or refused (another file with the same content), unless `reuse=True`
        (only with `replace`): every chunk of `dirs` is then registered, those already in the run a second
        time under new sample ids, so the new phase draws from all of them and still reads no sample twice
        per epoch (epochs draw from the ids from the switch on). Without `replace`, a dir prepared from input
        files that a dir of the run read too is refused (`check_new_inputs`; a WARNING at a `phase` switch,
        hours in). Returns the new sample count.
        """
        if reuse and not replace:
            raise ValueError("add_data: reuse=True needs replace=True (merged with the rest of the epoch, "
                             "re-used chunks would be read twice in it)")
        # One dir named twice (`--add-data D --add-data D/`, relative and absolute) is read once, as in
        # `data.dirs`: scanned twice, its chunks were refused as copies of themselves.
        dirs = unique_dirs(dirs)
        available, tok = scan_data_dirs(dirs, self.weights, self._inputs)
        if tok.get("fingerprint") != self.tokenizer.get("fingerprint"):
            raise DataError(
                f"{dirs[0]}: tokenizer fingerprint {tok.get('fingerprint')!r} differs from the run's "
                f"{self.tokenizer.get('fingerprint')!r}"
            )
        # NOTE: at an annealing switch (phase) the run is hours in: warn; startup checks should refuse it.
        check_dirs_give_samples(available, dirs, self.seq_len, warn=phase is not None)
        if not replace:  # a `replace` phase draws from its own data only: it may share documents with the rest
            self.check_new_inputs(dirs, warn=phase is not None)
            self._warn_outside_phase(dirs, available)
        else:
            self._warn_appended_left_out(dirs, {a.md5 for a in available} if reuse else set())
        if not reuse:
            # The same file listed again (e.g. `--add-data` repeated at a later resume) is not a duplicate.
            registered = {c.md5: Path(c.file).resolve() for c in self.chunks}
            available = [a for a in available if registered.get(a.md5) != a.path.resolve()]
        report_coverage(available, self.seq_len)
        # absolute: a relative `--add-data` dir was looked up again from whatever cwd the resume ran in
        self.extra_dirs += [str(Path(d).resolve()) for d in dirs if str(Path(d).resolve()) not in self.extra_dirs]
        base = self.total
        added = self._register(available, again=reuse)
        for a in available:
            self._available.setdefault(a.md5, a)
        self._append(base, added, replace)
        if phase is not None:
            self.phases.append(phase)
        return added

    def _active_md5s(self) -> set[str]:
        """The chunks the run draws from now: after a `replace` switch, those registered since."""
        return {c.md5 for c, start in zip(self.chunks, self._offsets[:-1].tolist()) if start >= self.active_base}

    def _warn_outside_phase(self, dirs: list[str], available: list[_Available]) -> None:
        """After a `replace` switch: warn of dirs given to `add_data` whose chunks are in the run, but only in the
        phase the switch ended (a dir appended before it, or of `data.dirs`). They stay out: a dir passed again
        changes nothing (the run's order does not depend on when a resume passes it), which a launcher that
        passes its `--add-data` dirs at every resume relies on; the annealing data was chosen in anneal.dirs."""
        if self.active_base == 0:
            return
        registered, active = {c.md5 for c in self.chunks}, self._active_md5s()
        for d in dirs:
            stale = [a for a in available if a.dir == Path(d) and a.md5 in registered and a.md5 not in active]
            if stale:
                log.warning(
                    "data: --add-data %s: its %d chunks are in the run already, in the pretraining phase that the "
                    "annealing switch (mode replace) ended, so they are not in the annealing data and passing the "
                    "dir again changes nothing. From the switch on the run draws only from the chunks of "
                    "anneal.dirs and data appended since; to anneal on data of the run, list its dir in "
                    "anneal.dirs before the switch (mode replace may re-use data already in the run)", d, len(stale))

    def _warn_appended_left_out(self, dirs: list[str], reused: set[str]) -> None:
        """At a `replace` switch: warn of dirs appended with `add_data` whose samples not drawn yet this epoch the
        switch leaves out (merged into the rest of the epoch that it drops), with how many.

        `dirs`, the new phase's dirs, and chunks of `reused` (registered again for it) are not named.
        """
        skip = {Path(d).resolve() for d in dirs}
        appended = {Path(d).resolve() for d in self.extra_dirs} - skip
        starts = self._offsets[:-1].tolist()
        mine: dict[Path, list[int]] = {}
        for i, (c, start) in enumerate(zip(self.chunks, starts)):
            if start >= self.active_base and c.md5 not in reused and c.count:
                d = Path(c.file).parent.resolve()
                if d in appended:
                    mine.setdefault(d, []).append(i)
        if not mine:
            return
        shown = []
        for d, idx in mine.items():
            n, total = int(self._left_in_epoch(idx).sum()), sum(self.chunks[i].count for i in idx)
            if n:
                shown.append(f"{d} ({n} of its {total} samples not drawn yet)")
        if shown:
            log.warning(
                "data: the annealing switch (mode replace) leaves out data appended with --add-data: %s. Its samples "
                "were merged into the rest of the pretraining epoch, which the switch drops: from the switch on the "
                "run draws only from the chunks of anneal.dirs (and data appended since), and --add-data of these "
                "dirs later changes nothing (their chunks are in the run). To anneal on appended data, list its dir "
                "in anneal.dirs before the switch (mode replace may re-use data already in the run)",
                "; ".join(shown))

    def _left_in_epoch(self, idx: list[int]) -> np.ndarray:
        """Samples of chunks `idx` (of the phase the run draws from) not drawn yet in this epoch."""
        # Every id from `active_base` on is at one position of the epoch, and an id appended mid-epoch only at one
        # from its segment's start on: left = count - drawn since then, or counted over the positions not consumed,
        # whichever range is shorter (walked in blocks: ~8 MB at a time; ~0.5 s per million positions).
        consumed, length = self.consumed, self.order.length
        lo = min(s.start for s in self.order.segments
                 if any(s.new_base < self._offsets[i + 1] and self._offsets[i] < s.new_base + s.new_count for i in idx))
        wanted = np.full(len(self.chunks), -1, dtype=np.int64)
        wanted[idx] = np.arange(len(idx))

        def count(lo: int, hi: int) -> np.ndarray:
            out = np.zeros(len(idx), dtype=np.int64)
            for s in range(lo, hi, 1 << 20):
                ids = self.order.ids(np.arange(s, min(hi, s + (1 << 20)), dtype=np.int64))
                k = wanted[np.searchsorted(self._offsets, ids, side="right") - 1]
                out += np.bincount(k[k >= 0], minlength=len(idx))
            return out

        if consumed - lo <= length - consumed:
            return np.array([self.chunks[i].count for i in idx], dtype=np.int64) - count(lo, consumed)
        return count(consumed, length)

    def _append(self, base: int, added: int, replace: bool) -> None:
        if added == 0 and not replace:
            return
        key = derive_key(self.seed, self.epoch, len(self.order.segments))
        self.order.append(self.consumed, base, added, key, replace=replace)
        if replace:
            self.active_base = base
        log.info(
            "data: %s %d samples at epoch %d position %d (%d segments)",
            "switched to" if replace else "appended",
            added,
            self.epoch,
            self.consumed,
            len(self.order.segments),
        )

    # --- order and reading --------------------------------------------------------------------------
    def _next_epoch_order(self, epoch: int) -> EpochOrder:
        return EpochOrder.fresh(self.active_base, self.total - self.active_base, derive_key(self.seed, epoch, 0))

    def global_ids(self, start: int, count: int) -> np.ndarray:
        """Sample ids at global positions `[start, start + count)` of the current epoch, running into the next."""
        pos = np.arange(start, start + count, dtype=np.int64)
        length = self.order.length
        ids = np.empty(count, dtype=np.int64)
        cur = pos < length
        ids[cur] = self.order.ids(pos[cur])
        if not cur.all():
            nxt = self._next_epoch_order(self.epoch + 1)
            if int(pos[-1]) - length >= nxt.length:
                raise DataError(f"one global micro-batch ({count} samples) exceeds an epoch ({nxt.length} samples)")
            ids[~cur] = nxt.ids(pos[~cur] - length)
        return ids

    def _tokens(self, chunk: int) -> np.ndarray:
        m = self._maps.get(chunk)
        if m is None:
            path, rec = self._paths[chunk], self.chunks[chunk]
            try:
                header, m = read_chunk(path)
                # NOTE: after the mapping: a file replaced between a stat and the open would be mapped under
                # the old file's identity, without a re-hash.
                ident = _identity(path)
            except OSError as e:
                raise DataError(f"{path}: cannot read chunk ({e.strerror})") from None
            except ChunkFormatError as e:
                raise DataError(str(e)) from None
            # NOTE: the file may have been replaced since the start-up check (mapped lazily, by path): a
            # shorter one crashed in read_samples, a same-size one was read as the registered chunk.
            if header.num_tokens != rec.tokens:
                raise DataError(f"{path}: chunk changed since the run checked it ({header.num_tokens} tokens, "
                                f"registered {rec.tokens}): replaced by a prepare rerun into this data dir? restore "
                                "it or start a new run")
            if rec.md5 in self._hashed and self._hashed[rec.md5] != ident:
                try:
                    actual = head_tail_md5(path)
                except OSError as e:
                    raise DataError(f"{path}: cannot read chunk ({e.strerror})") from None
                if actual != rec.md5:
                    raise DataError(f"{path}: chunk changed since the run checked it (head/tail MD5 {actual}, "
                                    f"registered {rec.md5}): replaced by a prepare rerun into this data dir? "
                                    "restore it or start a new run")
                self._hashed[rec.md5] = ident  # rewritten with the same content (a deterministic rerun)
            self._maps[chunk] = m
            self._vocab[chunk] = header.vocab_size
            self._min_vocab = min(self._vocab.values())
        return m

    def read_samples(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids), seq_len + 1) int64 windows for virtual sample ids."""
        T = self.seq_len
        chunk = np.searchsorted(self._offsets, ids, side="right") - 1
        out = np.empty((len(ids), T + 1), dtype=np.int64)
        for i, (c, v) in enumerate(zip(chunk.tolist(), (ids - self._offsets[chunk]).tolist())):
            rec = self.chunks[c]
            w = v * num_windows(rec.tokens, T) // rec.count
            out[i] = self._tokens(c)[w * T : w * T + T + 1]
        # NOTE: a bit flip inside a chunk (the head/tail MD5 covers only its ends) can make an id past the
        # vocabulary, which reached the embedding as an index error (on CUDA a device-side assert naming no
        # file). One max over the host batch (~2.5 us for 8 x 2049 ids, a few % of the loader's time per batch)
        # names the file instead.
        if out.size and out.max() >= self._min_vocab:
            self._check_ids(ids, out)
        return out

    def _check_ids(self, ids: np.ndarray, out: np.ndarray) -> None:
        """Raise a DataError naming the chunk file and offset of a sample holding an id >= its chunk's vocabulary."""
        T = self.seq_len
        chunk = np.searchsorted(self._offsets, ids, side="right") - 1
        for row, c, v in zip(out, chunk.tolist(), (ids - self._offsets[chunk]).tolist()):
            rec = self.chunks[c]
            start = v * num_windows(rec.tokens, T) // rec.count * T
            bad = np.flatnonzero(row >= self._vocab[c])
            if bad.size:
                k = int(bad[0])
                raise DataError(
                    f"{self._paths[c]}: token id {int(row[k])} at token offset {start + k} (in the sample at offset "
                    f"{start}) is >= the chunk's vocabulary size {self._vocab[c]}: the chunk is corrupt (its head/tail "
                    "MD5 does not cover the middle); restore it or prepare the data again"
                )

    def next_batch(self) -> dict[str, torch.Tensor]:
        W, B = self.world_size, self.micro_batch
        ids = self.global_ids(self.consumed, B * W)[self.rank :: W]  # rank r takes r, r+W, ...
        self.last_ids = ids
        window = torch.from_numpy(self.read_samples(ids))  # (B, T+1)
        self.consumed += B * W
        if self.consumed >= self.order.length:
            self.consumed -= self.order.length
            self.epoch += 1
            self.order = self._next_epoch_order(self.epoch)
        return {"input_ids": window[:, :-1], "shift_labels": window[:, 1:]}

    def __iter__(self):
        while True:
            yield self.next_batch()

    # --- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "kind": "pretrain",
            "seq_len": self.seq_len,
            "micro_batch": self.micro_batch,
            "world_size": self.world_size,
            "seed": self.seed,
            "epoch": self.epoch,
            "consumed": self.consumed,
            "active_base": self.active_base,
            "phases": list(self.phases),
            "extra_dirs": list(self.extra_dirs),
            "fingerprint": self.tokenizer.get("fingerprint"),
            "segments": self.order.state_dict(),
            # NOTE: O(chunks) not O(samples): md5, source, tokens, virtual count, file name for messages.
            "chunks": [[c.md5, c.file, c.source, c.tokens, c.count] for c in self.chunks],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the registry and position; chunks found in the data dirs but not registered are appended."""
        if state.get("kind") == "sft" or "rows_md5" in state:  # SFT states before 2026-12-06 had no kind
            raise DataError("data state: the run_dir holds an SFT run (steel sft); pretraining needs a run_dir of "
                            "its own")
        if state.get("version") != STATE_VERSION or state.get("kind") != "pretrain":
            raise DataError(f"data state: unsupported version/kind {state.get('version')}/{state.get('kind')}")
        if state["seq_len"] != self.seq_len:
            raise DataError(f"data state: seq_len {state['seq_len']} in the checkpoint, {self.seq_len} configured")
        if state["fingerprint"] != self.tokenizer.get("fingerprint"):
            raise DataError(
                f"data state: the run's tokenizer fingerprint {state['fingerprint']!r} differs from the data "
                f"dirs' {self.tokenizer.get('fingerprint')!r}"
            )
        if state["world_size"] != self.world_size:
            log.info("data: world size %d -> %d, the global order is re-split", state["world_size"], self.world_size)
        lookup = dict(self._available)
        self.extra_dirs = list(state.get("extra_dirs", []))
        # NOTE: repeats by resolved path: appended dirs are stored absolute, `--add-data`/anneal dirs may be
        # given relative, and one dir scanned twice is refused as a set of duplicate chunks.
        seen, more = {Path(d).resolve() for d in self.dirs}, []
        # The run's registered dirs first: a duplicate is then named as the new copy of a registered chunk.
        for d in [*map(Path, self.extra_dirs), *self.lookup_dirs]:
            if Path(d).resolve() not in seen and Path(d).is_dir():
                seen.add(Path(d).resolve())
                more.append(d)
        if more:
            for a in scan_data_dirs(more, self.weights, self._inputs)[0]:
                lookup.setdefault(a.md5, a)
        self.seed, self.epoch, self.consumed = state["seed"], state["epoch"], state["consumed"]
        self.active_base, self.phases = state["active_base"], list(state["phases"])
        self.chunks, self._maps, self._paths, self._vocab, self._min_vocab = [], {}, {}, {}, 0
        # A chunk rewritten in place (a prepare run again into its dir): the same file of the same dir. NOTE: by
        # dir and file name, not file name alone: every dir names its chunks SOURCE-00000.bin..., so a registered
        # chunk whose dir was left out was blamed on another dir's file ("changed since it was registered").
        by_name = {(a.path.parent.name, a.path.name): a for a in lookup.values()}
        for i, (md5, file, source, tokens, count) in enumerate(state["chunks"]):
            a = lookup.get(md5)
            if a is None:
                same = by_name.get((Path(file).parent.name, Path(file).name))
                if same is not None:
                    raise DataError(
                        f"{same.path}: chunk changed since it was registered as {file} (manifest MD5 {same.md5}, "
                        f"registered {md5}); restore it or start a new run"
                    )
                raise DataError(f"chunk {file} (MD5 {md5}) registered in this run is in none of the data dirs "
                                "(moved? list its directory in data.dirs or pass it with --add-data)")
            if a.tokens != tokens:
                raise DataError(f"{a.path}: chunk changed since it was registered ({a.tokens} tokens, was {tokens})")
            self.chunks.append(ChunkRecord(md5, str(a.path), source, tokens, count))
            self._paths[i] = a.path
        self._verify_all([(self._paths[i], c.md5) for i, c in enumerate(self.chunks)])
        self._offsets = np.concatenate([[0], np.cumsum([c.count for c in self.chunks], dtype=np.int64)])
        self.order = EpochOrder.from_state(state["segments"])
        registered = {c.md5 for c in self.chunks}
        self._warn_inputs_in_run(registered)
        # New chunks in the configured dirs (a new dir, `--add-data`, or files added to a dir) join now.
        new = [a for a in self._available.values() if a.md5 not in registered]
        if new and self.active_base > 0:
            # after a `replace` switch the run draws only from the annealing data: new chunks of the
            # pretraining dirs would have joined that phase and every later epoch
            log.warning("data: %d new chunks in the data dirs (e.g. %s) are not used: since the annealing "
                        "switch (mode replace) the run draws only from the annealing data; pass them with "
                        "--add-data to add them to it", len(new), new[0].path)
        elif new:
            self.check_new_inputs(self.dirs)
            base = self.total
            self._append(base, self._register(new), replace=False)


def check_same_data_on_every_rank(data: PretrainLoader, device: torch.device) -> None:
    """Refuse, on every rank, a run whose ranks' loaders disagree (call it on all ranks: a collective).

    Each rank scans the data dirs itself; ranks that see different data (node-local copies out of sync, a
    manifest replaced while the ranks started) each take their share of a *different* global order, so
    samples are read twice or never, silently. Compared: the registry by MD5 (not paths: node-local copies
    may live elsewhere) and the order state.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    state = data.state_dict()
    agreed = {k: v for k, v in state.items() if k not in ("chunks", "extra_dirs", "world_size", "micro_batch")}
    agreed["chunks"] = [[c.md5, c.source, c.tokens, c.count] for c in data.chunks]
    digest = hashlib.sha256(json.dumps(agreed, sort_keys=True).encode()).digest()
    mine = torch.tensor([int.from_bytes(digest[:7], "little"), len(data.chunks), data.total, data.order.length],
                        dtype=torch.int64, device=device)
    rows = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(rows, mine)
    rows = [tuple(r.tolist()) for r in rows]
    if len(set(rows)) == 1:
        return
    groups: dict[tuple, list[int]] = {}
    for rank, r in enumerate(rows):
        groups.setdefault(r, []).append(rank)
    views = "; ".join(
        f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks[:8]))}{', ...' if len(ranks) > 8 else ''}: "
        f"{n_chunks} chunks, {total} samples, epoch of {length}" for (_, n_chunks, total, length), ranks in groups.items()
    )
    # NOTE: the counts alone told nothing when a node's copy held another chunk of the same size (another
    # prepare's, a file replaced): "rank 0: 2 chunks, 311 samples, epoch of 311; rank 1: 2 chunks, 311 samples,
    # epoch of 311". Each rank compares its registry with rank 0's (one broadcast) and names its first
    # difference, with its host (ranks are numbered by the rendezvous, not by node).
    import socket

    box = [[(c.md5, c.file) for c in data.chunks] if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0, device=device)
    notes: list = [None] * dist.get_world_size()
    dist.all_gather_object(notes, (socket.gethostname(), _first_chunk_difference(box[0], data.chunks)))
    differs = [f"rank {r} (host {host}): {note}" for r, (host, note) in enumerate(notes) if note][:4]
    views += "".join(f"; {x}" for x in differs)
    raise DataError(f"the ranks see different data ({views}): each rank takes its share of the global order, so "
                    "every rank must read the same data dirs (node-local copies out of sync? a data dir changed while "
                    "the run started?); make them the same and start again")


def _first_chunk_difference(ref: list[tuple[str, str]], chunks: list[ChunkRecord]) -> str | None:
    """Where a rank's registry `chunks` first differs from rank 0's `ref` ((MD5, file) per chunk), or None.

    NOTE: the MD5s are the manifests' head/tail MD5s (`head_tail_md5`: no chunk is read here), which `md5sum` of
    the file does not print: told as such."""
    for i, ((md5, file), c) in enumerate(zip(ref, chunks)):
        if c.md5 != md5:
            return f"chunk {i + 1} is {c.file} (head/tail MD5 {c.md5}), rank 0's is {file} (head/tail MD5 {md5})"
    if len(chunks) > len(ref):
        c = chunks[len(ref)]
        return f"chunk {len(ref) + 1} is {c.file} (head/tail MD5 {c.md5}), rank 0 has {len(ref)} chunks"
    if len(chunks) < len(ref):
        md5, file = ref[len(chunks)]
        return f"{len(chunks)} chunks, rank 0's chunk {len(chunks) + 1} is {file} (head/tail MD5 {md5})"
    return None


def _identity(path: Path) -> tuple[int, int, int, int]:
    """(device, inode, size, mtime in ns) of a file: changes when the file is replaced or rewritten."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def worker_info() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment (0, 1 outside it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
