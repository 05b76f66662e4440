"""`steel eval contamination`: how much of a benchmark's questions appear in training data.

Both sides are normalised the same way (NFKC, lower case, only letters/digits/CJK kept, so spacing
and punctuation do not hide a copy), then cut into character n-grams. A question is looked for in
three layouts (`question_layouts`, `_reordered_share`), and its overlap is the largest share of a
layout's n-grams found in the training text; it counts as contaminated when that share reaches `threshold`.
Reported per subject and overall, so a score on a subject whose questions were trained on can be
discounted (Steel-LLM measured CMMLU 33 -> 36 after putting CMMLU-like questions into SFT).

Training data: prepared chunk directories (tokens decoded with the tokenizer given with --tokenizer,
else DIR/tokenizer, else the `tokenizer: DIR` it was prepared with if its fingerprint matches) and/or
text files: .json (array or object), .jsonl, .txt, optionally .zst or .gz;
every string value of a JSON record is read, so any SFT layout works.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import unicodedata
import zlib
from collections.abc import Iterator
from pathlib import Path

from steel.cli import UserError
from steel.data.sources import json_loads  # json.loads, with an integer over 4,300 digits a Decimal
from steel.eval.mc import DEFAULT_SPLIT, list_subjects, read_questions, subject_file

# Python's \w is str.isalnum() plus "_" (tested on every code point): this keeps exactly the alphanumerics,
# where a join over a generator of characters held one string object per character (~76 bytes each).
_NOT_ALNUM = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text).lower())


def ngrams(text: str, n: int) -> set[str]:
    if len(text) < n:
        return {text} if text else set()
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def question_layouts(question: str, choices: list[str], n: int) -> dict[str, set[str]]:
    """The n-gram sets of one question as a copy would lay it out: `lettered`, the stem then each option
    after its letter ("A. x", "(A) x", "A、x" all normalise to "ax"), and `plain`, stem and options run
    together as when the letters were dropped. (The third layout, `reordered`, is checked per document:
    see `contamination_report`.)

    NOTE: with the plain layout alone, only 2,674 of the 7,703 CMMLU test questions copied verbatim in
    the "A. x" layout were found: the letters break every n-gram that crosses two options. N-grams
    inside the stem or one option alone would find copies in any layout, but they flag a question whose
    stem quotes a text (a law article, a poem) with the text alone: 31 more CMMLU test questions against
    the shared Chinese corpus, none of them a copy of the question.
    """
    stem = normalize(question)
    opts = [normalize(c) for c in choices]
    return {
        "lettered": ngrams(stem + "".join(letter + o for letter, o in zip("abcdefghij", opts)), n),
        "plain": ngrams(stem + "".join(opts), n),
    }

def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: a leading BOM (Windows editors) is dropped, not read into the first record.
    # NOTE: compression is told by the magic number, as `steel data prepare` tells it (a .jsonl or .txt file
    # that is zstd or gzip is read); a .zst/.gz name on a file that is not compressed stays a read error.
    # (its `_compression`: a zstd file opening with pzstd's skippable frame was read as plain text, "invalid UTF-8")
    # Decompressed as prepare does (`_zstd_chunks`): zstandard's stream_reader ended a truncated file without an
    # error, so a cut .zst was checked as far as it went (nothing at all when cut inside its first frame).
    from steel.data.sources import _BlockReader, _compression, _zstd_chunks

    with path.open("rb") as f:
        kind = _compression(f)
    if path.name.endswith(".zst") or kind == "zst":
        def blocks() -> Iterator[bytes]:
            with path.open("rb") as raw:
                yield from _zstd_chunks(raw)

        return io.TextIOWrapper(io.BufferedReader(_BlockReader(blocks())), encoding="utf-8-sig")
    if path.name.endswith(".gz") or kind == "gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")


TXT_PIECE_CHARS = 1 << 20
TXT_OVERLAP = 256  # characters repeated across a cut inside a line: more than an n-gram


def _strings(obj) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _file_texts(path: Path) -> Iterator[str]:
    """Texts of one training file; undecodable input is one error line naming the file, not a traceback."""
    import zstandard

    try:
        yield from _read_file_texts(path)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: invalid UTF-8 ({e.reason} at byte {e.start} of a decoded block)") from None
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as e:  # corrupt or truncated .gz/.zst
        raise UserError(f"{path}: read error ({e})") from None


def _read_file_texts(path: Path) -> Iterator[str]:
    name = path.name.removesuffix(".zst").removesuffix(".gz")
    with _open_text(path) as f:
        if name.endswith(".jsonl"):
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json_loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{i}: invalid JSON ({e.msg})") from None
                yield "\n".join(_strings(rec))
        elif name.endswith(".json"):
            text = f.read()
            try:
                data = json_loads(text)
            except json.JSONDecodeError:
                # Some ".json" files are JSON Lines (belle eval); read them as such.
                for i, line in enumerate(text.splitlines(), 1):
                    if line.strip():
                        try:
                            yield "\n".join(_strings(json_loads(line)))
                        except json.JSONDecodeError as e:
                            raise UserError(
                                f"{path}:{i}: neither a JSON document nor JSON Lines ({e.msg})"
                            ) from None
                return
            for rec in data if isinstance(data, list) else [data]:
                yield "\n".join(_strings(rec))
        else:
            # Plain text in pieces of ~1M characters (a piece is one document), cut after a line's end: one
            # string per file took several times its size in memory while it was normalised and cut into
            # n-grams. A line longer than a piece is cut inside. Either way the cut's last TXT_OVERLAP
            # characters begin the next piece too, so no n-gram across the cut is lost: normalisation joins
            # lines, and a question copied over several lines (stem, then "A. x" lines) that a cut fell
            # inside lost every n-gram across it (a short one was not found at all).
            carry, fresh = "", 0  # fresh: characters at the end of carry that no piece has held yet
            while block := f.read(TXT_PIECE_CHARS):
                text = carry + block
                start = len(carry) - fresh
                cut = text.rfind("\n", start) + 1  # a newline in the repeated characters is not a new cut
                cut = cut if cut > start else len(text)
                yield text[:cut]
                carry = text[max(0, cut - TXT_OVERLAP) :]
                fresh = len(text) - cut
            if fresh:
                yield carry


def _chunk_texts(data_dir: Path, tokenizer_dir: str | Path | None) -> Iterator[str]:
    """The documents of a prepared data dir, decoded; a document split across chunks comes back whole.

    NOTE: prepare fills each source's chunks in turn (consecutive in the manifest), cutting a document
    at a chunk's end; decoding chunk by chunk split such a document in two (missing the n-grams across
    the cut, and a character whose bytes straddle it decoded to U+FFFD). The tokens after a chunk's
    last EOS are carried into the next chunk of the same source instead.
    """
    import numpy as np

    from steel.data.chunks import read_chunk
    from steel.data.tokenize import check_tokenizer_matches, tokenizer_dir_for
    from steel.eval.ppl import open_manifest

    manifest = open_manifest(data_dir)
    notes: list[str] = []
    tok_dir = Path(tokenizer_dir) if tokenizer_dir else tokenizer_dir_for(data_dir, notes=notes)
    if tokenizer_dir:  # the automatic lookup checks this itself; a given one decoded the ids to other text
        check_tokenizer_matches(data_dir, tok_dir, "--tokenizer")
    if tok_dir is None or not tok_dir.is_dir():
        where = tok_dir or f"{data_dir / 'tokenizer'} or the manifest's tokenizer.spec"
        rec = manifest.get("tokenizer") if isinstance(manifest.get("tokenizer"), dict) else {}
        spec, made = rec.get("spec"), rec.get("dir")
        relative = isinstance(spec, str) and not Path(spec).is_absolute()
        if tok_dir is None and relative and isinstance(made, str) and Path(made).is_absolute():
            # tried too (tokenizer_dir_for): the spec's directory as prepare resolved it
            where = f"{data_dir / 'tokenizer'}, the manifest's tokenizer.spec or its tokenizer.dir {made}"
        hint = f" ({'; '.join(notes)})" if notes else ""
        raise UserError(
            f"{data_dir}: chunks need a tokenizer to decode; none in {where}{hint}, pass --tokenizer DIR"
        )
    # NOTE: tokenizer.json itself, the inverse of the data pipeline's encoder (steel.tokenizer.engine), not
    # AutoTokenizer: a tokenizer with custom code (`auto_map`) stopped this with a traceback asking for
    # trust_remote_code (a prompt in a terminal), though decoding needs none of that code.
    from tokenizers import Tokenizer

    from steel.tokenizer.engine import read_tokenizer_json

    tok = Tokenizer.from_str(json.dumps(read_tokenizer_json(tok_dir)))
    eos = manifest.get("tokenizer", {}).get("eos_id")
    if eos is None:
        from steel.tokenizer.engine import Encoder

        eos = Encoder(tok_dir, engine="hf").eos_id

    def decode(ids) -> str:
        return tok.decode(ids.tolist(), skip_special_tokens=True)

    carry, carry_source = np.zeros(0, dtype=np.int64), None
    for c in manifest["chunks"]:
        _h, tokens = read_chunk(data_dir / c["file"])
        source = c.get("source")
        if len(carry) and source != carry_source:  # a source's last chunk without a final EOS
            yield decode(carry)
            carry = carry[:0]
        tokens = np.concatenate([carry, np.asarray(tokens, dtype=np.int64)]) if len(carry) else np.asarray(tokens)
        # Decode document by document (EOS-separated) so no n-gram spans two documents.
        start = 0
        for end in (tokens == eos).nonzero()[0].tolist():
            if end > start:
                yield decode(tokens[start:end])
            start = end + 1
        carry, carry_source = tokens[start:], source
    if len(carry):
        yield decode(carry)


def training_texts(paths: list[Path], tokenizer_dir: str | Path | None = None) -> Iterator[str]:
    for p in paths:
        if p.is_dir():
            if not (p / "manifest.json").is_file():
                raise UserError(f"{p}: a directory must be a prepared data dir (manifest.json)")
            yield from _chunk_texts(p, tokenizer_dir)
        elif p.is_file():
            if p.suffix in (".parquet", ".arrow", ".bin", ".npy"):  # read as text, they gave "invalid UTF-8"
                raise UserError(
                    f"{p}: binary {p.suffix} files are not read here; give .json/.jsonl/.txt (optionally .zst or "
                    ".gz), or a directory made by `steel data prepare`"
                )
            yield from _file_texts(p)
        else:
            raise UserError(f"--data {p}: no such file or directory")


# A stem shorter than n has no n-gram of its own: the `reordered` layout looks for it whole, if it has at
# least SHORT_STEM_MIN characters and, with its options, 2 n (a short stem with short options, "下列正确的是"
# with "是"/"否", would be found next to its options in unrelated text).
SHORT_STEM_MIN = 4


def _options_near(t: str, start: int, end: int, options: list[str]) -> bool:
    """Whether every option occurs in `t` near `t[start:end]`, before or after it: within the options'
    length and room for their labels."""
    near = sum(len(o) for o in options) + 8 * len(options) + 16
    window = t[max(0, start - near) : end + near]
    return all(o in window for o in options)


def _reordered_share(t: str, hits: list[tuple[int, str]], stem_grams: set[str], options: list[str], n: int) -> float:
    """The `reordered` layout in one normalised text: the largest share of the stem's n-grams found close
    together (spanning at most the stem's length and a half), if every option occurs near them, before or
    after, in any order and with any labels ("①x", "选项A：x", options shuffled: the labels and the order
    break the joined layouts' n-grams).

    NOTE: "anywhere in the document" flagged a question whose stem is quoted by a law code (one 1M-character
    piece of it) and whose short options ("个人", "团体") occur somewhere in it too.
    """
    stem_len = len(next(iter(stem_grams))) + len(stem_grams) - 1
    span = stem_len + stem_len // 2
    best, lo, count = 0.0, 0, {}
    for hi in range(len(hits)):  # two pointers over the hits, in position order
        count[hits[hi][1]] = count.get(hits[hi][1], 0) + 1
        while hits[hi][0] - hits[lo][0] > span:
            g = hits[lo][1]
            count[g] -= 1
            if not count[g]:
                del count[g]
            lo += 1
        share = len(count) / len(stem_grams)
        if share > best and _options_near(t, hits[lo][0], hits[hi][0] + n, options):
            best = share
    return best


def contamination_report(
    data: list[Path],
    task: str,
    bench: Path,
    split: str | None,
    n: int = 13,
    threshold: float = 0.5,
    tokenizer_dir: str | Path | None = None,
) -> dict:
    if n < 1:
        raise UserError("--n: must be >= 1")
    if not 0 < threshold <= 1:
        raise UserError("--threshold: must be in (0, 1]")
    split = split or DEFAULT_SPLIT[task]
    questions = []  # (subject, where, {layout: n-gram set}, stem n-grams, normalised options)
    index: dict[str, list[int]] = {}  # n-gram -> questions containing it (in any layout)
    short: dict[str, list[tuple[int, str]]] = {}  # a short stem's first characters -> (question, stem)
    for s in list_subjects(task, bench, split):
        for q in read_questions(subject_file(task, bench, split, s), task, s, need_answer=False):
            layouts = question_layouts(q.question, q.choices, n)
            stem = normalize(q.question)
            stem_grams = ngrams(stem, n) if len(stem) >= n else set()
            for g in set().union(*layouts.values()):
                index.setdefault(g, []).append(len(questions))
            options = [o for o in (normalize(c) for c in q.choices) if o]
            if SHORT_STEM_MIN <= len(stem) < n and len(stem) + sum(map(len, options)) >= 2 * n:
                short.setdefault(stem[:SHORT_STEM_MIN], []).append((len(questions), stem))
            questions.append((s, q.where, layouts, stem_grams, options))
    short_stemmed = {qi for hits in short.values() for qi, _ in hits}
    found: list[set[str]] = [set() for _ in questions]
    reordered = [0.0] * len(questions)  # best share of stem n-grams in one document holding every option
    docs = chars = 0
    for text in training_texts(data, tokenizer_dir):
        t = normalize(text)
        docs += 1
        chars += len(t)
        # NOTE: n-grams are looked up as they are cut, not collected in a set first: a set of a whole
        # document's n-grams took ~150 bytes per character (1.3 GB for one 7M-character .txt).
        # Short texts (shorter than n) are compared whole, matching how short questions are indexed.
        grams = ((i, t[i : i + n]) for i in range(len(t) - n + 1)) if len(t) >= n else (((0, t),) if t else ())
        stem_hits: dict[int, list[tuple[int, str]]] = {}  # question -> (position, stem n-gram) in this text
        for i, g in grams:
            hit = index.get(g)
            if hit:
                for qi in hit:
                    found[qi].add(g)
                    if g in questions[qi][3]:
                        stem_hits.setdefault(qi, []).append((i, g))
        for qi, hits in stem_hits.items():
            share = _reordered_share(t, hits, questions[qi][3], questions[qi][4], n)
            reordered[qi] = max(reordered[qi], share)
        if short:  # short stems, whole, with every option near (one more look-up per character)
            for i in range(len(t) - SHORT_STEM_MIN + 1):
                for qi, stem in short.get(t[i : i + SHORT_STEM_MIN], ()):
                    if reordered[qi] < 1.0 and t.startswith(stem, i) and _options_near(
                        t, i, i + len(stem), questions[qi][4]
                    ):
                        reordered[qi] = 1.0
    subjects: dict[str, dict] = {}
    flagged = []
    for qi, (s, where, layouts, stem_grams, _options) in enumerate(questions):
        shares = {k: len(found[qi] & g) / len(g) for k, g in layouts.items() if g}
        if stem_grams or qi in short_stemmed:
            shares["reordered"] = reordered[qi]
        layout, share = max(shares.items(), key=lambda kv: kv[1]) if shares else (None, 0.0)
        d = subjects.setdefault(s, {"n": 0, "contaminated": 0, "mean_overlap": 0.0})
        d["n"] += 1
        d["mean_overlap"] += share
        if share >= threshold:
            d["contaminated"] += 1
            # Every layout's share: a partial copy (the stem alone) shows as such, not as its best layout.
            flagged.append({"where": where, "overlap": round(share, 4), "layout": layout,
                            "overlaps": {k: round(v, 4) for k, v in shares.items()}})
    for d in subjects.values():
        d["mean_overlap"] /= d["n"]
        d["rate"] = d["contaminated"] / d["n"]
    total = sum(d["contaminated"] for d in subjects.values())
    return {
        "task": task,
        "split": split,
        "n": n,
        "threshold": threshold,
        "training": {"paths": [str(p) for p in data], "documents": docs, "normalized_chars": chars},
        "subjects": subjects,
        "overall": {
            "questions": len(questions),
            "contaminated": total,
            "rate": total / len(questions) if questions else 0.0,
        },
        "flagged": flagged,
    }


def markdown_contamination(result: dict) -> str:
    lines = [
        f"## Contamination of {result['task']} {result['split']} ({result['n']}-gram, threshold {result['threshold']})",
        "",
        f"Training text: {result['training']['documents']} documents, {result['training']['normalized_chars']} characters.",
        f"Contaminated questions: {result['overall']['contaminated']} of {result['overall']['questions']}.",
        "",
        "| subject | questions | contaminated | rate | mean n-gram overlap |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for s, d in result["subjects"].items():
        lines.append(
            f"| {s} | {d['n']} | {d['contaminated']} | {100 * d['rate']:.1f}% | {100 * d['mean_overlap']:.1f}% |"
        )
    return "\n".join(lines) + "\n"
