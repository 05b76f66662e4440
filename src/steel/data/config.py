"""`steel data prepare` configuration: typed dataclasses read from YAML (see README, "Data preparation").

Every field has a comment; errors name the dotted field (`sources[2].format: ...`,
`filters[3].min_chars: ...`) so a wrong config is one clear line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from steel.config import ConfigError

FORMATS = ("auto", "jsonl", "jsonl.zst", "jsonl.gz", "json", "parquet", "csv", "txt")
CHAT_LAYOUTS = ("sharegpt", "alpaca", "openai")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class SourceConfig:
    name: str  # unique; used in chunk file names and in manifest["sources"] (letters, digits, _ . -)
    path: list[str]  # files or globs (`**` allowed), relative to DataConfig.root unless absolute
    format: Literal["auto", "jsonl", "jsonl.zst", "jsonl.gz", "json", "parquet", "csv", "txt"] = "auto"
    kind: Literal["text", "chat"] = "text"  # chat records are rendered in ChatML
    weight: float = 1.0  # mixture weight, recorded in the manifest for the trainer
    text_field: str = "text"  # kind=text: dotted name of the text field (`meta.body`)
    record_path: str | None = None  # path to the records inside a JSON document, e.g. `data[*].paragraphs[*]`
    # kind=chat: record layout; unset means alpaca (None, not "alpaca", so that a text source setting it is caught)
    chat_layout: Literal["sharegpt", "alpaca", "openai"] | None = None
    # kind=chat: rename the layout's fields, e.g. {instruction: question, output: answer} for GSM8K.
    # alpaca keys: instruction, input, output, system, history; sharegpt: conversations, role, content;
    # openai: messages, role, content.
    fields: dict[str, str] = field(default_factory=dict)
    system: str | None = None  # kind=chat: system prompt added when a record has none
    txt_unit: Literal["file", "paragraph", "line"] = "file"  # format=txt: what one document is
    csv_delimiter: str = ","  # format=csv
    # format=csv: `"` quotes cells (minimal, as csv writes them) or is plain text (none); auto: none for .tsv
    csv_quoting: Literal["auto", "minimal", "none"] = "auto"

    def validate(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(f"name: {self.name!r} must be letters, digits, '_', '.', '-' (used in file names)")
        if not self.path:
            raise ConfigError("path: at least one file or glob is needed")
        if self.weight < 0:
            raise ConfigError(f"weight: must be >= 0, got {self.weight}")
        # NOTE: an empty name or part finds nothing in any record: the whole source would be rejected
        # record by record (missing_field) for a config typo.
        _check_dotted("text_field", self.text_field)
        if len(self.csv_delimiter) != 1:
            raise ConfigError(f"csv_delimiter: must be one character, got {self.csv_delimiter!r}")
        from steel.data.chat import LAYOUT_FIELDS, SPECIAL_MARKERS
        from steel.data.sources import detect_format, parse_record_path

        if self.record_path is not None:
            try:
                parse_record_path(self.record_path)
            except ValueError as e:
                raise ConfigError(f"record_path: {e}") from None
        if self.kind == "text":
            # A chat setting on a text source would be silently ignored (the text is read from text_field).
            for name, unset in (("chat_layout", None), ("fields", {}), ("system", None)):
                if getattr(self, name) != unset:
                    raise ConfigError(f"{name}: only for kind: chat (source {self.name!r} is kind: text)")
            return
        # NOTE: a txt line/paragraph/file has no fields to find a conversation in: it was read as a text
        # document, tokenized without ChatML, and the manifest called the source chat (`kinds: [text]` filters
        # skipped it). A glob that does not tell the format (`data/*`) is left to the reader.
        if self.format == "txt":
            raise ConfigError(f"format: txt holds no chat records (source {self.name!r} is kind: chat)")
        if self.text_field != "text":  # a chat record is read by its layout's fields, never by text_field
            raise ConfigError(f"text_field: only for kind: text (source {self.name!r} is kind: chat; rename "
                              f"a chat field with `fields:`)")
        for i, pattern in enumerate(self.path):
            try:
                txt = self.format == "auto" and detect_format(pattern) == "txt"
            except ConfigError:  # no format in the name
                txt = False
            if txt:
                raise ConfigError(f"path[{i}]: {pattern!r} is a txt file, which holds no chat records "
                                  f"(source {self.name!r} is kind: chat)")
        marker = next((m for m in SPECIAL_MARKERS if self.system and m in self.system), None)
        if marker is not None:  # it goes into every record that has no system prompt, which is then rejected
            raise ConfigError(f"system: contains {marker!r}; every record without a system prompt would be "
                              f"rejected (special_token_in_text)")
        if self.chat_layout is None:
            self.chat_layout = "alpaca"
        unknown = sorted(set(self.fields) - set(LAYOUT_FIELDS[self.chat_layout]))
        if unknown:
            raise ConfigError(
                f"fields.{unknown[0]}: not a field of layout {self.chat_layout!r} "
                f"(known: {', '.join(LAYOUT_FIELDS[self.chat_layout])})"
            )
        for key, dotted in self.fields.items():
            _check_dotted(f"fields.{key}", dotted)


def _check_dotted(where: str, dotted: str) -> None:
    if not all(dotted.split(".")):
        raise ConfigError(f"{where}: {dotted!r} is not a dotted field name (like `text` or `meta.body`)")


@dataclass
class NormalizeConfig:
    # Unicode normalization form. NOTE: NFKC would turn Chinese full-width punctuation (，。：) into
    # ASCII (, . :), changing the text style of a Chinese corpus, so NFC is the default.
    unicode: Literal["NFC", "NFKC", "none"] = "NFC"
    control_chars: bool = True  # drop C0/C1 control and zero-width characters (keeps \n and \t)
    whitespace: bool = True  # strip line ends, at most one blank line in a row, \r\n -> \n, odd spaces -> ' '
    t2s: bool = False  # Traditional -> Simplified Chinese with OpenCC (`t2s`)


@dataclass
class DedupConfig:
    exact: bool = True  # drop documents whose normalized text hash was seen (case/whitespace-insensitive)
    near: bool = True  # drop near duplicates by MinHash LSH
    threshold: float = 0.8  # estimated Jaccard similarity of character n-gram sets at which a doc is a near dup
    num_perm: int = 128  # MinHash permutations (signature length)
    ngram: int = 5  # character n-gram (shingle) length
    seed: int = 1  # seed of the MinHash permutations

    def validate(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"threshold: must be in (0, 1], got {self.threshold}")
        if not 16 <= self.num_perm <= 1024:
            raise ConfigError(f"num_perm: must be in [16, 1024], got {self.num_perm}")
        if self.ngram < 1:
            raise ConfigError(f"ngram: must be >= 1, got {self.ngram}")
        if not 0 <= self.seed < 1 << 64:  # the MinHash permutations are drawn from a 64-bit seed
            raise ConfigError(f"seed: must be in [0, 2**64), got {self.seed}")


@dataclass
class DataConfig:
    sources: list[SourceConfig]  # the inputs, in order (earlier sources win dedup ties)
    # tokenizer directory (relative: found as `root` is), or `qwen` to build Qwen's into OUTPUT/tokenizer/
    tokenizer: str = "qwen"
    root: str | None = None  # base of relative source paths; default: the config file's directory
    output: str = "runs/data"  # output directory (chunks + manifest.json + prepare.log)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    filters: list[dict[str, Any]] = field(default_factory=list)  # `{name: ..., <params>}`, in pipeline order
    dedup: DedupConfig = field(default_factory=DedupConfig)
    chunk_tokens: int = 1 << 24  # tokens per chunk file (the last chunk of a source may be shorter)
    workers: int = 2  # tokenizer processes (<= 1: everything in the main process)
    # Characters sent to a worker at once. NOTE: small enough for ~50 batches per 40 MB so both workers
    # stay busy to the end (2M chars: ~7 batches and 1.7x slower on 2 cores), large enough to amortize IPC.
    batch_chars: int = 250_000
    max_doc_chars: int = 4_000_000  # longer documents are rejected as `too_large`
    max_line_bytes: int = 64 << 20  # JSONL lines longer than this are rejected unparsed as `too_large`
    max_json_file_bytes: int = 2 << 30  # a JSON array/document file is loaded whole; larger ones are rejected
    log_examples: int = 5  # first N rejected records per (source, reason) logged with file:line

    def validate(self) -> None:
        if not self.sources:
            raise ConfigError("sources: at least one source is needed")
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"sources: duplicate name {dup[0]!r}")
        if self.chunk_tokens < 1:
            raise ConfigError(f"chunk_tokens: must be >= 1, got {self.chunk_tokens}")
        if self.workers < 0:
            raise ConfigError(f"workers: must be >= 0, got {self.workers}")
        for name in ("batch_chars", "max_doc_chars", "max_line_bytes", "max_json_file_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1")
        if self.log_examples < 0:
            raise ConfigError(f"log_examples: must be >= 0, got {self.log_examples}")
        from steel.data.filters import build_filters

        build_filters(self.filters, names, source_kinds=[s.kind for s in self.sources])  # "filters[i].field: ..."

    def resolve_root(self, config_path: str | Path | None) -> Path:
        if self.root is not None:
            return _from_cwd_or_config(Path(self.root), config_path)
        return Path(config_path).parent if config_path is not None else Path.cwd()

    def resolve_tokenizer(self, config_path: str | Path | None, check: bool = True) -> str:
        """`tokenizer:` as prepare loads it: `qwen`, or a directory, relative ones found as `root` is (the current
        directory when it exists there, else the config file's directory). `check`: a ConfigError naming the field
        when it is no tokenizer directory.

        NOTE: it was taken from the current directory alone, so `cd .. && steel data prepare dir/data.yaml` failed
        on `tokenizer: tok/bpe` while `root:` beside it was found.
        """
        if self.tokenizer == "qwen":
            return self.tokenizer
        tried = Path(os.path.expanduser(self.tokenizer))
        tok = _from_cwd_or_config(tried, config_path)
        if check:
            if not tok.exists():
                where = (f"neither {tried} (from the current directory) nor {tok} (from the config file's directory) "
                         "exists" if tok != tried else f"{tok} does not exist")
                raise ConfigError(f"tokenizer: {where}; give a tokenizer directory (holding tokenizer.json) or `qwen`")
            if not (tok / "tokenizer.json").is_file():
                what = "is not a directory" if not tok.is_dir() else "is not a tokenizer directory (no tokenizer.json)"
                raise ConfigError(f"tokenizer: {tok} {what}")
        return str(tok)


def _from_cwd_or_config(path: Path, config_path: str | Path | None) -> Path:
    """A relative `path` of a config (`root: ../data`, `tokenizer: tok`): from the current directory when it exists
    there, else from the config file's directory. `~` is the home directory, as in a shell.

    NOTE: os.path.expanduser, as a shell, leaves `~name` as it is where no user is so named; Path.expanduser raised
    RuntimeError ("Could not determine home directory"): `root: ~raw`, a directory of that name, was a traceback."""
    path = Path(os.path.expanduser(path))
    if not path.is_absolute() and config_path is not None and not path.exists():
        return Path(config_path).parent / path
    return path
