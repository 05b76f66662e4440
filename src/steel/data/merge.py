"""`steel data merge OUT DIR...`: join the outputs of `steel data prepare --shard I/N` into one data dir.

Chunk files are hard-linked into OUT (copied when OUT is on another file system) after their
head/tail MD5 is checked against their manifest; the per-source accounting is summed. As `prepare`, merge
builds its output in OUT/.partial/ and swaps it in when complete (`steel.data.swap`): a kill or an error
leaves OUT's previous output (`--overwrite`) or the new one, never neither.

Dedup ran within each shard; merge finishes the exact dedup across shards from the `documents.npy`
each shard wrote (hash, place in the unsharded input, tokens, source of every kept document): of the
copies of a text in several shards, the one an unsharded run reads first is kept, and the others are
cut out of their chunks. Only the chunk files that lose documents are rewritten (in OUT; the inputs
are never touched); the removed documents are counted under the source's `dedup_exact` filter, so
the result (kept documents, tokens, accounting) is that of one unsharded `prepare`.

`--near` (opt-in) also removes near duplicates across shards: with near dedup on, each shard wrote
`signatures.npy` (MinHash, 4 * num_perm bytes per kept document), and merge runs one LSH pass over all
the kept documents in unsharded input order, counting its drops under `dedup_near`: close to an
unsharded run, not always equal (see `_near_duplicates`), and it needs one global LSH index, the
memory that sharding avoided (~1.5 KB per document), which is why it is not the default.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from steel.cli import UserError
from steel.data.chunks import (
    DOCUMENTS,
    MANIFEST,
    SIGNATURES,
    ChunkFormatError,
    ChunkWriter,
    head_tail_md5,
    read_chunk,
    read_documents,
    read_manifest,
)
from steel.data.config import DedupConfig
from steel.data.dedup import Deduper
from steel.data.prepare import (
    DEDUP_HASHES,
    STAGING,
    _clear_stale,
    _previous_chunks,
    _sigterm_as_interrupt,
    kept_nothing,
    manifest_paths,
    swap_finished_output,
    warn_identical_chunks,
)
from steel.data.swap import chunk_name, finish_swap, log_left
from steel.data.tokenize import dir_fingerprint
from steel.dirlock import LOCK_NAME

MERGE_LOG = "merge.log"


def check_not_input(out_dir: str | Path, dirs: list[str | Path]) -> None:
    """Refuse an OUT that is one of the inputs (writing there would replace the chunks it reads), before anything
    (the command's lock and merge.log) touches it."""
    if not dirs:
        raise UserError("merge: give at least one data directory")
    for d in dirs:
        if Path(d).resolve() == Path(out_dir).resolve():
            raise UserError(f"{d}: the output directory cannot be one of the inputs")


def check_out_dir(out_dir: str | Path, overwrite: bool) -> None:
    """Refuse a non-empty OUT unless `overwrite`: merge deletes the chunks its manifest lists.

    OUT's own `merge.log` does not count (`steel data merge` opens it before merging), nor `.steel.lock`, nor
    the `.partial/` of a merge or prepare killed before its swap (removed by the merge). A swap a killed one left
    half done is finished first: its output is OUT's.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    if overwrite or not out.is_dir():
        return
    try:
        finish_swap(out)
    except ChunkFormatError as e:
        raise UserError(str(e)) from None
    names = sorted(p.name for p in out.iterdir() if p.name not in (MERGE_LOG, LOCK_NAME, STAGING))
    if not names:
        return
    if MANIFEST in names:
        try:
            m = read_manifest(out)
            what = f"a data directory: {MANIFEST}, {len(m['chunks'])} chunk files, {m['total_tokens']:,} tokens"
            if m.get("merged_from"):
                what += f", merged from {', '.join(m['merged_from'])}"
        except (ChunkFormatError, ValueError, KeyError):
            what = f"{MANIFEST} (unreadable) and {len(names) - 1} other entries"
    else:
        what = ", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5 else "")
    raise UserError(f"{out}: output directory is not empty ({what}); merge would delete its chunks and replace "
                    "its manifest (use --overwrite to replace a previous output)")


# The settings that decide which documents a shard keeps and in what order the merge sees them; shards of
# one dataset must agree on them (paths, workers and chunk sizes may differ: they change no document).
_SHARD_SETTINGS = ("normalize", "filters", "dedup", "max_doc_chars", "max_line_bytes", "max_json_file_bytes")
_SOURCE_SETTINGS = ("kind", "format", "text_field", "record_path", "chat_layout", "fields", "system", "txt_unit",
                    "csv_delimiter", "csv_quoting", "weight")
_SOURCE_DEFAULTS = {"csv_quoting": "auto"}  # settings older manifests do not record: what they read with


def _check_same_settings(manifests: list[tuple[Path, dict]]) -> None:
    """Refuse shards prepared from different configs: dedup decisions and the document index map
    (`documents.npy` source numbers) are read against the first shard's source list."""
    first_dir, first = manifests[0]

    def settings(m: dict) -> dict | None:
        cfg = m.get("config")
        if cfg is None:  # a manifest without its config (older Steel): only the source names are compared
            return None
        return {k: cfg.get(k) for k in _SHARD_SETTINGS} | {
            "sources": [{"name": s["name"]} | {k: s.get(k, _SOURCE_DEFAULTS.get(k)) for k in _SOURCE_SETTINGS}
                        for s in cfg["sources"]]}

    want = settings(first)
    for d, m in manifests[1:]:
        if list(m["sources"]) != list(first["sources"]):
            raise UserError(f"{d}: sources {list(m['sources'])} differ from {first_dir}'s {list(first['sources'])} "
                            "(names or order); prepare every shard from one config")
        got = settings(m)
        for k in want if want is not None and got is not None else ():
            if got[k] != want[k]:
                raise UserError(f"{d}: `{k}` differs from {first_dir}'s; prepare every shard from one config")


def _warn_other_code(manifests: list[tuple[Path, dict]], log) -> None:
    """Warn when shards were prepared by different Steel code: one config may filter, normalize or
    deduplicate differently across versions, so the merge would mix two rules without a word."""
    def code(m: dict) -> tuple[str | None, str | None]:
        env = m.get("environment") or {}
        return env.get("steel"), env.get("git")

    first_dir, first = manifests[0]
    for d, m in manifests[1:]:
        if code(m) != code(first):
            (v0, g0), (v1, g1) = code(first), code(m)
            log.warning("merge: %s was prepared by steel %s (git %s), %s by steel %s (git %s): the same config "
                        "may keep other documents across versions; prepare every shard with one version",
                        d, v1, g1, first_dir, v0, g0)


def _warn_other_unicode(manifests: list[tuple[Path, dict]], log) -> None:
    """Warn when shards hashed their documents under different Unicode data (Python versions): NFC/NFKC and
    case folding of characters that one version knows and the other does not differ, so a document holding
    one hashes differently in each shard, and merge keeps both copies (an unsharded run keeps one)."""
    def version(m: dict) -> str | None:
        d = m.get("dedup") or {}
        return d.get("unicode") if d.get("exact") or d.get("near") else None

    first_dir, first = manifests[0]
    for d, m in manifests[1:]:
        if None not in (version(m), version(first)) and version(m) != version(first):
            log.warning("merge: %s normalized and hashed its documents with Unicode %s (Python's unicodedata), %s "
                        "with Unicode %s: a document holding a character whose normalization or case folding "
                        "differs between them hashes differently in each, so such cross-shard duplicates are not "
                        "found; prepare every shard under one Python version", d, version(m), first_dir,
                        version(first))


def _listing_diff(a: dict, b: dict, a_dir: Path, b_dir: Path, limit: int = 5) -> str:
    """The files two shards' input listings disagree on, as text for an error ('' when not recorded)."""
    la, lb = (m.get("inputs", {}).get("files") for m in (a, b))
    if not isinstance(la, dict) or not isinstance(lb, dict):
        return ""
    only_a, only_b, resized = [], [], []
    for name in dict.fromkeys([*la, *lb]):
        fa, fb = dict(map(tuple, la.get(name, []))), dict(map(tuple, lb.get(name, [])))
        only_a += [f"{name}:{f}" for f in fa if f not in fb]
        only_b += [f"{name}:{f}" for f in fb if f not in fa]
        resized += [f"{name}:{f} ({fa[f]:,} vs {fb[f]:,} bytes)" for f in fa if f in fb and fa[f] != fb[f]]

    def show(xs: list[str]) -> str:
        return ", ".join(xs[:limit]) + (f" and {len(xs) - limit} more" if len(xs) > limit else "")

    parts = ([f"only {a_dir} saw {show(only_a)}"] if only_a else []) + (
        [f"only {b_dir} saw {show(only_b)}"] if only_b else []) + ([f"size differs: {show(resized)}"] if resized else [])
    return f" ({'; '.join(parts)})" if parts else ""


def _check_same_inputs(manifests: list[tuple[Path, dict]], log, complete: bool) -> str | None:
    """Refuse shards split from different input files; returns their common input digest (None: unknown).

    Each shard splits the file list it finds at its start by size (`prepare.assign_shard`): a file added or
    resized between the shards' runs shifts the split, and a file lands in two shards (read twice) or in
    none (lost). Shards record the digest of the whole listing (names and sizes); a file that two shards
    read is refused too (shards of an older Steel, without the digest, are checked that far only), and,
    with every shard given, a listed file no shard read.
    """
    first_dir, first = manifests[0]
    digests = [(m.get("inputs") or {}).get("digest") for _, m in manifests]
    if any(x is None for x in digests):
        old = [str(d) for (d, _), x in zip(manifests, digests) if x is None]
        log.warning("%s: no input digest (prepared by an older Steel): merge cannot check that the shards were "
                    "split from the same input files", ", ".join(old))
    for (d, m), dg in zip(manifests[1:], digests[1:]):
        if None not in (dg, digests[0]) and dg != digests[0]:
            raise UserError(f"{d} and {first_dir}: prepared from different input files"
                            f"{_listing_diff(first, m, first_dir, d)}; files added, removed or resized between the "
                            "shards' runs shift the split (a file read twice or not at all): rerun every shard on "
                            "the same files")
    owner: dict[tuple[str, str], Path] = {}
    for d, m in manifests:
        for name, s in m["sources"].items():
            for f in s.get("files", []):
                if owner.get((name, f), d) != d:  # twice in one shard: one file globbed twice (a symlink)
                    raise UserError(f"{d}: source {name!r} file {f} was read by {owner[name, f]} too (the shards were "
                                    "split from different input files); rerun every shard on the same files")
                owner[name, f] = d
    listing = (first.get("inputs") or {}).get("files")
    if complete and digests[0] is not None and None not in digests and isinstance(listing, dict):
        unread = [f"{name}:{f}" for name, fs in listing.items() for f, _ in fs if (name, f) not in owner]
        if unread:
            raise UserError(f"merge: no shard read {', '.join(unread[:5])}" + (
                f" and {len(unread) - 5} more" if len(unread) > 5 else "") + " of the shards' input listing")
    return digests[0] if None not in digests else None


def _merged_roots(manifests: list[tuple[Path, dict]]) -> dict:
    """`inputs.root` and `inputs.elsewhere` of a merge output: its files by absolute path, as the shards name them.

    The first shard's root; a file of a shard prepared under another root (another mount of the same data) is
    named in `elsewhere`. {} when a shard records no root (an older Steel's): the output is judged as its own."""
    roots, elsewhere = [], {}
    for _, m in manifests:
        inputs = m.get("inputs") or {}
        root, more = inputs.get("root"), inputs.get("elsewhere")
        if not isinstance(root, str):
            return {}
        roots.append(root)
        elsewhere |= more if isinstance(more, dict) else {}
    for (_, m), root in zip(manifests, roots):
        if root != roots[0]:
            for s in m["sources"].values():
                elsewhere |= {f: os.path.join(root, f) for f in s.get("files", [])
                              if f not in elsewhere and not os.path.isabs(f)}
    return {"root": roots[0]} | ({"elsewhere": elsewhere} if elsewhere else {})


def merge(out_dir: str | Path, dirs: list[str | Path], log=None, near: bool = False, overwrite: bool = False,
          allow_missing: bool = False) -> dict:
    """Merge the shard dirs `dirs` into `out_dir`; returns the manifest (also written to OUT/manifest.json).

    A non-empty `out_dir` is refused unless `overwrite`, and an incomplete set of shards unless
    `allow_missing` (the result would silently lack the missing shards' data).
    """
    out_dir = Path(out_dir)
    check_not_input(out_dir, dirs)
    check_out_dir(out_dir, overwrite)
    from steel.dirlock import dir_lock

    # SIGTERM as Ctrl-C (as prepare): the stage goes; it used to kill the merge and leave OUT/.partial/ behind
    with _sigterm_as_interrupt(), dir_lock(out_dir, "steel data merge"):  # a second merge (or prepare) is refused
        try:
            return _merge(out_dir, dirs, log, near, allow_missing)
        except BaseException:
            # the previous output stays as it was; once the swap's journal is written, the staged output is the
            # one OUT gets (the next reader finishes the swap)
            log_left(out_dir, out_dir / STAGING, log or logging.getLogger("steel"))
            raise


def _merge(out_dir: Path, dirs: list[str | Path], log, near: bool, allow_missing: bool) -> dict:
    manifests = []
    for d in dirs:
        try:
            manifests.append((Path(d), read_manifest(d)))
        except ChunkFormatError as e:
            raise UserError(str(e)) from None
    first_dir, first = manifests[0]
    tok = first["tokenizer"]
    shards_seen: dict[int, Path] = {}
    for d, m in manifests:
        if m["tokenizer"]["fingerprint"] != tok["fingerprint"]:
            raise UserError(f"{d}: tokenizer fingerprint differs from {first_dir}'s; cannot merge")
        sh = m.get("shard", {"index": 0, "count": 1})
        if sh["count"] != first.get("shard", {}).get("count", 1):
            raise UserError(f"{d}: shard count {sh['count']} differs from {first_dir}'s")
        if sh["index"] in shards_seen:
            raise UserError(f"{d}: shard {sh['index']} given twice (also {shards_seen[sh['index']]})")
        shards_seen[sh["index"]] = d
    _check_same_settings(manifests)
    count = first.get("shard", {}).get("count", 1)
    missing = sorted(set(range(count)) - set(shards_seen))
    log = log or logging.getLogger("steel.data")
    _warn_other_code(manifests, log)
    _warn_other_unicode(manifests, log)
    inputs_digest = _check_same_inputs(manifests, log, complete=not missing)
    if missing:
        if not allow_missing:
            raise UserError(f"merge: {len(shards_seen)} of {count} shards given; missing shard index(es) "
                            f"{', '.join(map(str, missing))} (of 0..{count - 1}); give them, or --allow-missing "
                            "to merge without their data")
        log.warning("merging %d of %d shards; missing shard(s) %s (--allow-missing)", len(shards_seen), count,
                    missing)
    removed, found = _cross_shard_duplicates(manifests, log, near)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The output is written to OUT/.partial/ and replaces the previous one (`--overwrite`) in one swap when complete,
    # as `prepare`'s does: a kill or an error before leaves the previous output, after it the new one.
    _clear_stale(out_dir, log)
    stage = out_dir / STAGING
    stage.mkdir()
    chunks, names = [], set()
    sources: dict[str, dict] = {}
    rewritten = 0
    for n_in, (d, m) in enumerate(manifests):
        cuts = removed[n_in].cuts if removed else {}
        for i, c in enumerate(m["chunks"]):
            try:
                chunk_name(c["file"], d / MANIFEST, i)  # linked into the stage by that name
            except ChunkFormatError as e:
                raise UserError(str(e)) from None
            if c["file"] in names:
                raise UserError(f"{d}: chunk name {c['file']} occurs in two inputs")
            names.add(c["file"])
            src = d / c["file"]
            if head_tail_md5(src) != c["md5"]:
                raise UserError(f"{src}: MD5 differs from its manifest (corrupt or replaced)")
            dst = stage / c["file"]
            if c["file"] in cuts:
                rewritten += 1
                n = _write_without(src, dst, cuts[c["file"]])
                if n:  # a chunk left empty is dropped: chunks are never empty (ChunkSink)
                    chunks.append(dict(c) | {"tokens": n, "md5": head_tail_md5(dst)})
                continue
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            chunks.append(dict(c))
        for name, s in m["sources"].items():
            acc = sources.setdefault(name, {"read": 0, "kept": 0, "filtered": {}, "rejected": {}, "weight": s["weight"],
                                           "kind": s["kind"], "tokens": 0, "files": []})
            if (acc["weight"], acc["kind"]) != (s["weight"], s["kind"]):
                raise UserError(f"{d}: source {name!r} has weight/kind {s['weight']}/{s['kind']}, "
                                f"another input {acc['weight']}/{acc['kind']}")
            for k in ("read", "kept", "tokens"):
                acc[k] += s[k]
            for k in ("filtered", "rejected"):
                for reason, n in s[k].items():
                    acc[k][reason] = acc[k].get(reason, 0) + n
            acc["files"] += s.get("files", [])
            gone = removed[n_in].per_source.get(name) if removed else None
            if gone:
                for key in ("dedup_exact", "dedup_near"):
                    acc["kept"] -= gone[key]
                    acc["filtered"][key] = acc["filtered"].get(key, 0) + gone[key]
                acc["tokens"] -= gone["tokens"]
    warn_identical_chunks(chunks, log)  # across shards, with dedup off
    for name, s in sources.items():
        assert s["read"] == s["kept"] + sum(s["filtered"].values()) + sum(s["rejected"].values()), name
    for name in sources if removed else ():  # the cuts moved tokens from the chunks to the dedup filters
        n = sum(c["tokens"] for c in chunks if c.get("source") == name)
        assert n == sources[name]["tokens"], f"{name}: chunks hold {n} tokens, the accounting says otherwise"

    found = found or {}
    dedup = {**first.get("dedup", {}), "scope": "per shard", "cross_shard_exact_duplicates": found.get("exact")}
    for key in ("exact_hashes_file", "documents_file", "signatures_file", "indexed_docs"):  # first shard's only
        dedup.pop(key, None)
    unicode = sorted({u for u in ((m.get("dedup") or {}).get("unicode") for _, m in manifests) if u is not None})
    if len(unicode) > 1:  # the first shard's alone claimed every hash was folded with its tables (merge warned)
        dedup["unicode"] = ", ".join(unicode)
    if removed:
        order = list(sources)
        kept_docs, kept_sigs = [], []
        for r, (d, m) in zip(removed, manifests):
            remap = np.array([order.index(name) for name in m["sources"]] or [0], dtype=np.uint16)
            rows = r.docs[r.keep]
            rows["source"] = remap[rows["source"]]
            kept_docs.append(rows)
            if "near" in found:
                kept_sigs.append(np.load(d / SIGNATURES, mmap_mode="r")[r.keep])
        np.save(stage / DOCUMENTS, np.concatenate(kept_docs))
        dedup |= {"scope": "all shards (merge removed the cross-shard duplicates)",
                  "cross_shard_exact_removed": found["exact"], "rewritten_chunks": rewritten,
                  "documents_file": DOCUMENTS}
        if "near" in found:
            np.save(stage / SIGNATURES, np.concatenate(kept_sigs))
            dedup |= {"cross_shard_near_removed": found["near"], "signatures_file": SIGNATURES}
        elif dedup.get("near"):
            dedup["scope"] = "exact: all shards (merge removed the cross-shard copies); near: per shard"
    # OUT/tokenizer/: the shards' (`tokenizer: qwen` builds it into each; staged, it replaces OUT's in the swap), or
    # none; one that a previous output left with another tokenizer (`--overwrite`) goes, or decoding would take it.
    swap_tokenizer = tok["fingerprint"]
    if dir_fingerprint(out_dir / "tokenizer") != tok["fingerprint"]:
        src = next((d / "tokenizer" for d, _ in manifests if dir_fingerprint(d / "tokenizer") == tok["fingerprint"]),
                   None)
        if src is not None:
            shutil.copytree(src, stage / "tokenizer")
            swap_tokenizer = None
    manifest = {
        "total_tokens": sum(c["tokens"] for c in chunks),
        "chunks": chunks,
        "tokenizer": tok,
        "sources": sources,
        "shard": {"index": 0, "count": 1, "merged_shards": sorted(shards_seen), "of": count},
        "dedup": dedup,
        "config": first.get("config"),
        "merged_from": [str(d) for d, _ in manifests],
    }
    if inputs_digest is not None:
        manifest["inputs"] = {"digest": inputs_digest}
    manifest["inputs"] = manifest.get("inputs", {}) | _merged_roots(manifests)
    listing = (first.get("inputs") or {}).get("files")
    if isinstance(listing, dict):
        # The whole input's files (names and sizes), as an unsharded prepare records them: the loader refuses a
        # data dir prepared from one of them again. NOTE: with shards missing, `steel data inspect` judges the
        # accounting as one of a whole input too: a source whose files in the given shards were all rejected was a
        # problem, although its files in the missing ones may keep records (as a shard holding some of them only warns).
        manifest["inputs"]["files"] = listing
    # The shards' input heads (`prepare.file_heads`), for the loader to tell a file grown since; none where a shard has
    # none (an older Steel's) or they cover other lengths.
    heads = [m.get("input_heads") if isinstance(m.get("input_heads"), dict) else {} for _, m in manifests]
    lengths = {h.get("bytes") for h in heads}
    if len(lengths) == 1 and isinstance(next(iter(lengths)), int) and all(isinstance(h.get("files"), dict) for h in heads):
        manifest["input_heads"] = {"bytes": lengths.pop(), "files": {k: v for h in heads for k, v in h["files"].items()}}
    if not manifest["inputs"]:
        del manifest["inputs"]
    old_chunks = _previous_chunks(out_dir)
    previous = old_chunks + [n for n in (DEDUP_HASHES, DOCUMENTS, SIGNATURES) if (out_dir / n).exists()]
    swap_finished_output(out_dir, stage, manifest, previous, swap_tokenizer, len(old_chunks),
                         f"the output was complete: {out_dir} holds the merged output ({len(chunks)} chunks, "
                         f"{manifest['total_tokens']:,} tokens); the check of what each source kept may not have "
                         f"run: `steel data inspect {out_dir}` runs it", "merge", log, by="steel data merge")
    # a warning here: the shards each had only their part of the input
    errors, warnings = kept_nothing(sources, count if missing else 1, listing if isinstance(listing, dict) else None,
                                    merged=True, paths=manifest_paths(manifest))
    for line in errors + warnings:
        log.warning("%s", line)
    log.info("merged %d dirs: %d chunks, %d tokens; cross-shard duplicates %s (%s; %d chunks rewritten)",
             len(manifests), len(chunks), manifest["total_tokens"], found or "unknown",
             "removed" if removed else "not removed", rewritten)
    return manifest


class _Removal:
    """What merge cuts out of one input: its documents.npy rows and, per chunk, local token ranges."""

    def __init__(self, docs: np.ndarray):
        self.docs = docs
        self.keep = np.ones(len(docs), dtype=bool)
        self.cuts: dict[str, list[tuple[int, int]]] = {}
        self.per_source: dict[str, dict[str, int]] = {}  # name -> {dedup_exact: n, dedup_near: n, tokens: n}


def _cross_shard_duplicates(manifests: list[tuple[Path, dict]], log,
                            near: bool) -> tuple[list[_Removal] | None, dict | None]:
    """(what to remove per input, or None when unknown; the cross-shard duplicates found, per kind)."""
    if not all(m.get("dedup", {}).get("exact") for _, m in manifests):
        if near:
            raise UserError("--near: needs shards prepared with dedup.exact and dedup.near on")
        return None, None
    try:
        docs = [read_documents(d, m) for d, m in manifests]
    except ChunkFormatError as e:
        raise UserError(str(e)) from None
    if any(x is None for x in docs):
        old = [d for (d, _), x in zip(manifests, docs) if x is None]
        if near:
            raise UserError(f"--near: {old[0]} has no {DOCUMENTS} (prepared by an older Steel?)")
        log.warning("%s: no %s (prepared by an older Steel?): cross-shard exact duplicates are not removed; "
                    "rerun `steel data prepare` on that shard to remove them", old[0], DOCUMENTS)
        if all((d / DEDUP_HASHES).exists() for d, _ in manifests):  # those older shards stored the hashes
            allh = np.concatenate([np.load(d / DEDUP_HASHES) for d, _ in manifests])
            return None, {"exact": int(len(allh) - len(np.unique(allh)))}
        return None, None
    removals = [_Removal(x) for x in docs]
    allh = np.concatenate([x["hash"] for x in docs])
    order = np.concatenate([x["order"] for x in docs])
    # NOTE: within a shard the hashes are unique (prepare kept one copy); across shards the copy with
    # the smallest unsharded input position is the one an unsharded run keeps (ties: input order).
    idx = np.lexsort((order, allh))
    exact = np.zeros(len(allh), dtype=bool)
    exact[idx[1:][allh[idx][1:] == allh[idx][:-1]]] = True
    bounds = np.cumsum([0] + [len(x) for x in docs])
    near = _near_duplicates(manifests, bounds, order, exact) if near else None
    found = {"exact": int(exact.sum())} | ({"near": int(near.sum())} if near is not None else {})
    for r, (d, m), lo, hi in zip(removals, manifests, bounds[:-1], bounds[1:]):
        ex = exact[lo:hi]
        nr = near[lo:hi] if near is not None else np.zeros_like(ex)
        r.keep = ~(ex | nr)
        for k, name in enumerate(m["sources"]):
            mine = r.docs["source"] == k
            if r.keep[mine].all():
                continue
            tok = r.docs["tokens"][mine].astype(np.int64)
            ends = np.cumsum(tok)
            starts = ends - tok
            lost = ~r.keep[mine]
            r.per_source[name] = {"dedup_exact": int(ex[mine].sum()), "dedup_near": int(nr[mine].sum()),
                                  "tokens": int(tok[lost].sum())}
            files = [c for c in m["chunks"] if c.get("source") == name]
            c_end = np.cumsum([c["tokens"] for c in files])
            c_start = c_end - [c["tokens"] for c in files]
            for s, e in zip(starts[lost], ends[lost]):
                j = int(np.searchsorted(c_end, s, side="right"))  # the chunk that holds token s
                while j < len(files) and c_start[j] < e:  # a document may run on into the next chunks
                    r.cuts.setdefault(files[j]["file"], []).append(
                        (int(max(s, c_start[j]) - c_start[j]), int(min(e, c_end[j]) - c_start[j])))
                    j += 1
    return removals, found


def _minhash_scheme(manifest: dict) -> str:
    # A manifest without the key: a Steel that drew the permutations from numpy's default_rng.
    return manifest.get("dedup", {}).get("minhash", "numpy-default_rng")


def _near_duplicates(manifests, bounds: np.ndarray, order: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Near dedup of the documents the shards kept (less the exact duplicates), in unsharded input order.

    NOTE: an approximation of one unsharded run, not the same result: a shard has already dropped the
    near duplicates of its own documents, and where a chain A ~ B ~ C crosses shards (B dropped for A
    in the unsharded run, so C was compared with A only) a shard may have dropped C for B. One global
    LSH index is built here: the memory an unsharded prepare's index takes (~1.5 KB per document).
    """
    cfgs = [(m.get("config") or {}).get("dedup") for _, m in manifests]
    for (d, m), c in zip(manifests, cfgs):
        if not m.get("dedup", {}).get("near"):
            raise UserError(f"--near: {d} was prepared with dedup.near off")
        if c != cfgs[0] or not isinstance(c, dict):
            raise UserError(f"--near: {d}'s dedup settings {c} differ from {manifests[0][0]}'s {cfgs[0]}")
        if not (d / SIGNATURES).exists():
            raise UserError(f"--near: {d} has no {SIGNATURES} (written by `prepare --shard I/N` with N > 1)")
        if _minhash_scheme(m) != _minhash_scheme(manifests[0][1]):
            raise UserError(f"--near: {d}'s MinHash signatures were drawn with other permutations "
                            f"({_minhash_scheme(m)}) than {manifests[0][0]}'s ({_minhash_scheme(manifests[0][1])}): "
                            "comparing them would miss the near duplicates; prepare every shard with one steel version")
    cfg = DedupConfig(**{**cfgs[0], "exact": False})
    sigs = []
    for (d, _), lo, hi in zip(manifests, bounds[:-1], bounds[1:]):
        x = np.load(d / SIGNATURES, mmap_mode="r")
        if x.shape != (hi - lo, cfg.num_perm) or x.dtype != np.uint32:
            raise UserError(f"{d / SIGNATURES}: shape {x.shape} {x.dtype}, expected ({hi - lo}, {cfg.num_perm}) uint32")
        sigs.append(x)
    deduper = Deduper(cfg)
    near = np.zeros(len(order), dtype=bool)
    n_in = np.searchsorted(bounds, np.arange(len(order)), side="right") - 1
    for p in np.argsort(order, kind="stable"):
        if not exact[p]:
            k = n_in[p]
            near[p] = deduper.check(None, np.asarray(sigs[k][p - bounds[k]])) is not None
    return near


def _write_without(src: Path, dst: Path, cuts: list[tuple[int, int]]) -> int:
    """Copy chunk `src` to `dst` without the token ranges `cuts` (disjoint); returns the tokens left."""
    header, tokens = read_chunk(src)
    w = ChunkWriter(dst, header.vocab_size, header.fingerprint)
    try:
        pos = 0
        for a, b in sorted(cuts):
            w.write(tokens[pos:a])
            pos = b
        w.write(tokens[pos:])
    except BaseException:
        w.abort()
        raise
    if w.num_tokens == 0:
        w.abort()
        return 0
    w.close()
    return w.num_tokens
