"""Documents -> token ids with EOS appended as an id (never as text), packed into one numpy array.

Text documents are encoded as ordinary text (a literal "<|endoftext|>" in a web page stays text).
Chat documents are ChatML strings (`steel.data.chat`): they are split on the markers, each marker
becomes its special id and the pieces between are encoded as ordinary text, which gives the ids of
`Encoder.encode_chat` (tested).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from steel.data.chat import IM_END, IM_START, SPECIAL_MARKERS

_MARKER_RE = re.compile("(" + "|".join(map(re.escape, SPECIAL_MARKERS)) + ")")


class EncoderLike(Protocol):
    eos_id: int
    vocab_size: int
    fingerprint: str
    special_ids: dict[str, int]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...


def load_data_encoder(spec: str, out_dir: Path, num_threads: int | None = None, log=None,
                      stage: Path | None = None):
    """`tokenizer:` of the data config -> an Encoder. `qwen` builds Qwen's tokenizer into OUT/tokenizer/.

    An OUT/tokenizer/ that lacks a file the build writes, or does not load with the tiktoken engine (a
    truncated tokenizer.json or rank file), is what an interrupted build of an older Steel left: it is
    rebuilt, with a warning (the build itself is atomic). With `stage` (prepare's OUT/.partial/), the build goes
    into `stage`/tokenizer/ instead, with the files of OUT/tokenizer/ the build does not write (as
    `build_qwen_tokenizer` keeps them), and OUT's is replaced only when the output's swap moves it in: an
    interrupted prepare leaves the previous output's tokenizer/ with it. (A link OUT/tokenizer is built through,
    as before: what it points to is not the output's to swap.)
    """
    from steel.tokenizer.engine import load_encoder

    if spec != "qwen":
        return load_encoder(spec, num_threads=num_threads)
    from steel.cli import UserError
    from steel.tokenizer.qwen import HF_TOKENIZER_EXTRAS, QWEN_FILES, build_qwen_tokenizer

    log = log or logging.getLogger("steel")
    tok_dir = out_dir / "tokenizer"
    missing = [f for f in QWEN_FILES if not (tok_dir / f).is_file()]
    if not missing:
        try:
            # NOTE: tiktoken required: without it a directory missing its rank file would silently encode
            # with the slower HF engine (same ids) and the manifest would say so.
            return load_encoder(tok_dir, engine="tiktoken", num_threads=num_threads)
        except UserError as e:
            log.warning("%s: does not load (%s): rebuilding Qwen's tokenizer there", tok_dir, e)
    elif tok_dir.exists():
        log.warning("%s: incomplete (no %s; an interrupted build?): rebuilding Qwen's tokenizer there", tok_dir,
                    ", ".join(missing))
    else:
        log.info("building Qwen's tokenizer into %s", tok_dir)
    build = tok_dir if stage is None or tok_dir.is_symlink() else stage / "tokenizer"
    build_qwen_tokenizer(build)
    if build != tok_dir and tok_dir.is_dir():
        for p in tok_dir.iterdir():
            if p.name not in HF_TOKENIZER_EXTRAS and not (build / p.name).exists():
                (shutil.copytree if p.is_dir() and not p.is_symlink() else shutil.copy2)(p, build / p.name)
    return load_encoder(build, engine="tiktoken", num_threads=num_threads)


def replace_tokenizer_dir(data_dir: str | Path, fingerprint: str, source: Path | None = None, log=None,
                          aside: Path | None = None) -> None:
    """Make `data_dir`/tokenizer/ the tokenizer the data was tokenized with (`fingerprint`), or absent.

    A tokenizer/ with another fingerprint (left by an earlier output into the same directory) is removed:
    `tokenizer_dir_for` and `steel chat` would take it and decode the ids to other text. `source`, when
    given, is copied in its place (via a temporary sibling renamed when complete). `aside`: a path in a
    directory of the caller's to rename that tokenizer/ to (the caller deletes it), instead of a scratch
    directory beside it deleted here.
    """
    from steel.tokenizer.qwen import OLD_SUFFIX, PARTIAL_SUFFIX, scratch_dir

    data_dir = Path(data_dir)
    log = log or logging.getLogger("steel")
    own = data_dir / "tokenizer"
    drop = None
    if own.exists() or own.is_symlink():
        got = dir_fingerprint(own)
        if got == fingerprint:
            return
        if aside is None:
            drop = scratch_dir(own, OLD_SUFFIX)
            aside = drop / "tokenizer"
        elif aside.is_symlink() or aside.is_file():  # set aside by a killed run, which then found none here
            aside.unlink()
        elif aside.exists():
            shutil.rmtree(aside)
        os.rename(own, aside)  # a rename first: a kill in the rmtree leaves no half tokenizer/
        log.info("removed %s: not the data's tokenizer (fingerprint %s, the data's %s)", own,
                 got[:12] if got else "none", fingerprint[:12])
    if source is not None:
        tmp = scratch_dir(own, PARTIAL_SUFFIX)
        shutil.copytree(source, tmp / "tokenizer")
        os.rename(tmp / "tokenizer", own)
        tmp.rmdir()
    if drop is not None:
        shutil.rmtree(drop, ignore_errors=True)


def encode_documents(encoder: EncoderLike, docs: list[str], is_chat: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """-> (tokens uint32 (sum of lengths,), lengths int64 (len(docs),)); each document ends with EOS."""
    pieces: list[str] = []
    plan: list[list] = []  # per doc: ints (special ids) and indices into `pieces` as ("p", i)
    for doc, chat in zip(docs, is_chat):
        if not chat:
            plan.append([len(pieces)])
            pieces.append(doc)
            continue
        parts: list = []
        for part in _MARKER_RE.split(doc):
            if part in SPECIAL_MARKERS:
                if part not in encoder.special_ids:
                    raise missing_chat_marker(encoder, part)
                parts.append(("s", encoder.special_ids[part]))
            elif part:
                parts.append(len(pieces))
                pieces.append(part)
        plan.append(parts)
    encoded = encoder.encode_batch(pieces) if pieces else []
    eos = encoder.eos_id
    lengths = np.empty(len(docs), dtype=np.int64)
    out: list[int] = []
    for i, parts in enumerate(plan):
        start = len(out)
        for p in parts:
            if isinstance(p, tuple):
                out.append(p[1])
            else:
                out += encoded[p]
        out.append(eos)
        lengths[i] = len(out) - start
    # NOTE: one np.array over a flat list (~25 ns/token) rather than one array per document.
    return np.array(out, dtype=np.uint32), lengths


def missing_chat_marker(encoder: EncoderLike, marker: str) -> Exception:
    """The error for a chat document and a tokenizer without ChatML's special token `marker`.

    NOTE: it was a bare `KeyError: '<|im_start|>'` traceback from a worker, after every file before the
    first chat record had been read (a tokenizer directory such as GPT-2's or Llama's has no ChatML tokens).
    """
    from steel.cli import UserError

    where = getattr(encoder, "tokenizer_dir", None) or "the tokenizer"
    return UserError(f"{where}: no special token {marker!r}: chat sources (kind: chat) are rendered as ChatML "
                     f"and need the special tokens {IM_START!r} and {IM_END!r}")


def dir_fingerprint(tok_dir: str | Path) -> str | None:
    """The fingerprint of `tok_dir`/tokenizer.json (None when there is none or it does not parse)."""
    import json

    from steel.tokenizer.engine import fingerprint

    try:
        return fingerprint(json.loads((Path(tok_dir) / "tokenizer.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def check_tokenizer_matches(data_dir: str | Path, tok_dir: str | Path, what: str) -> None:
    """Refuse `tok_dir` when its tokenizer.json is not the one the prepared `data_dir` was tokenized with
    (the manifest's fingerprint): its ids would mean other text (decoded wrongly, or scored as if they were
    the model's). Nothing to compare (no tokenizer.json, no fingerprint): no check."""
    import json

    from steel.cli import UserError

    try:
        want = json.loads((Path(data_dir) / "manifest.json").read_text(encoding="utf-8"))["tokenizer"]["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    got = dir_fingerprint(tok_dir)
    if want and got is not None and got != want:
        raise UserError(f"{data_dir}: tokenized with another tokenizer (fingerprint {want[:12]}...) than {what} "
                        f"{tok_dir} ({got[:12]}...)")


def tokenizer_dir_for(
    data_dir: str | Path, bases: Sequence[str | Path] = (), notes: list[str] | None = None
) -> Path | None:
    """The tokenizer directory a prepared data dir was tokenized with, or None when none is found.

    `DATA/tokenizer/` (where `tokenizer: qwen` builds it), else the directory the manifest names
    (`tokenizer.spec`, from `tokenizer: DIR` at prepare time), each accepted only when the fingerprint
    of its tokenizer.json is the manifest's (a manifest without one: DATA/tokenizer/ unchecked): another
    tokenizer would decode the ids to other text. A
    relative spec is relative to prepare's working directory: it is tried against `bases` (default: the
    current directory), the data dir's parent and the data dir, then as `tokenizer.dir` (that directory
    made absolute at prepare time; older manifests have none). Why a candidate was not taken is appended
    to `notes` (for the caller's error message).

    NOTE: `tokenizer.dir` since a relative `tokenizer:` is also found from the config file's directory
    (702e676): `cd .. && steel data prepare proj/data.yaml` records `proj/tok`, which `steel train` run
    from `proj/` (where the config's `tok` is) did not find, so the run got no tokenizer.
    """
    import json

    data_dir = Path(data_dir)
    notes = [] if notes is None else notes
    had = len(notes)
    try:
        tok = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8")).get("tokenizer") or {}
        spec, want, made = tok.get("spec"), tok.get("fingerprint"), tok.get("dir")
    except (OSError, ValueError, AttributeError):
        spec = want = made = None
    own = data_dir / "tokenizer"
    if (own / "tokenizer.json").is_file() or (own / "tokenizer_config.json").is_file():
        # Compared too: a tokenizer/ that an earlier output into the same directory left (Steel before
        # prepare and merge removed it) would decode the ids to other text.
        got = dir_fingerprint(own) if want else None
        if not want or got == want:
            return own
        notes.append(f"{own}: tokenizer fingerprint {(got or 'none')[:12]} differs from "
                     f"{data_dir / 'manifest.json'}'s {want[:12]}")
    if not isinstance(spec, str) or spec == "qwen" or not want:
        return None
    if Path(spec).is_absolute():
        tried = [Path(spec)]
    else:
        tried = [Path(b) / spec for b in (bases or [Path.cwd()])] + [data_dir.parent / spec, data_dir / spec]
        if isinstance(made, str) and Path(made).is_absolute():
            tried.append(Path(made))
    # NOTE: by resolved path: `tok` from the data dir's parent and the recorded absolute `tokenizer.dir` are one
    # directory, which a retrained tokenizer there named twice in the caller's message.
    seen: set[Path] = set()
    for cand in tried:
        if cand.resolve() in seen:
            continue
        seen.add(cand.resolve())
        got = dir_fingerprint(cand)
        if got is None:
            continue
        if got == want:
            return cand
        notes.append(f"{cand}: tokenizer fingerprint differs from {data_dir / 'manifest.json'}'s")
    if len(notes) == had:
        notes.append(f"{data_dir / 'manifest.json'} names tokenizer {spec!r}, not found")
    return None
