"""Document filters: each a small dataclass registered by name, configured in YAML in pipeline order.

    filters:
      - {name: length, min_chars: 50}
      - {name: script_share, script: han, min_share: 0.5, sources: [zh_wiki]}

A filter's fields are its parameters; every filter also takes `label` (its key in the manifest's
`filtered` counts, default its name), `sources` and `kinds` (apply only to those sources / kinds).
`keep(text) -> bool`; the first filter that says no drops the document and is counted.
Adding an operator is one class with `@register("name")`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from steel.config import ConfigError, from_dict

FILTERS: dict[str, type[Filter]] = {}

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CLASS_RE = {
    "cjk": re.compile(f"[{_HAN}\u3040-\u30ff\uac00-\ud7af]"),  # Han + kana + hangul
    "han": re.compile(f"[{_HAN}]"),
    "digit": re.compile("[0-9\uff10-\uff19]"),
    "whitespace": re.compile(r"\s"),
}


def register(name: str):
    def deco(cls):
        cls.name = name
        FILTERS[name] = cls
        return cls

    return deco


_TABLES: dict[str, np.ndarray] = {}


def _table(char_class: str) -> np.ndarray:
    """(0x110000,) bool: which code points belong to the class; built once per process (~0.3 s)."""
    if char_class not in _TABLES:
        every = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
        if char_class == "alpha":
            hits = np.array([c.isalpha() for c in every], dtype=bool)
        elif char_class == "alnum":
            hits = np.array([c.isalnum() for c in every], dtype=bool)
        elif char_class == "latin":
            # Letters of the Latin script: Unicode names them LATIN ... (Vietnamese ế U+1EBF, IPA ɪ, the ligature
            # ﬁ, full-width Ａ, which NFC keeps in Chinese text); not × (U+00D7) or ÷ (U+00F7), which are signs.
            # NOTE: not [A-Za-z\u00c0-\u024f] (as before): Latin Extended Additional, IPA and the ligatures
            # counted as letters of another script, so Vietnamese fell to ~80% Latin in `script_share`.
            # All are below U+1E000: the first 0x1E000 - 0x800 characters of `every` (it skips the surrogates).
            hits = np.zeros(len(every), dtype=bool)
            hits[[i for i, c in enumerate(every[:0x1E000 - 0x800]) if c.isalpha() and "LATIN" in unicodedata.name(c, "")]] = True
        elif char_class in ("symbol", "mark"):
            # symbol: punctuation and symbols, Chinese punctuation included (Unicode categories P*, S*);
            # mark: combining marks (M*). See `_symbol_count`.
            cats = "PS" if char_class == "symbol" else "M"
            hits = np.array([unicodedata.category(c)[0] in cats for c in every], dtype=bool)
        else:
            hits = np.zeros(len(every), dtype=bool)
            hits[[m.start() for m in _CLASS_RE[char_class].finditer(every)]] = True
        table = np.zeros(0x110000, dtype=bool)
        table[:0xD800] = hits[:0xD800]
        table[0xE000:] = hits[0xD800:]
        _TABLES[char_class] = table
    return _TABLES[char_class]


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _count(char_class: str, cps: np.ndarray) -> int:
    # NOTE: a table lookup over the code points; ~5x faster than counting with a regex sub.
    return int(np.count_nonzero(_table(char_class)[cps]))


def _symbol_count(cps: np.ndarray) -> int:
    """Punctuation and symbols, plus combining marks that attach to no letter or digit.

    NOTE: not `[^\\w\\s]` (as before), which counted every combining mark: Devanagari vowel signs,
    Arabic harakat (44% of a plain Hindi sentence), and also format characters (ZWJ) and private-use
    code points. A run of marks after a space or a symbol (junk such as 40 U+0326 after a sentence,
    found in the shared alpaca_zh data) still counts.
    """
    n = int(np.count_nonzero(_table("symbol")[cps]))
    mark = _table("mark")[cps]
    if mark.any():
        pos = np.where(mark, -1, np.arange(len(cps)))
        base = np.maximum.accumulate(pos)  # (len,) the last code point that is not a mark, -1 if none
        attached = (base >= 0) & _table("alnum")[cps[np.maximum(base, 0)]]
        n += int(np.count_nonzero(mark & ~attached))
    return n


def _letters_of(script: str) -> np.ndarray:
    """(0x110000,) bool: the code points of `script` that are letters (str.isalpha)."""
    key = f"{script}&alpha"
    if key not in _TABLES:
        _TABLES[key] = _table(script) & _table("alpha")
    return _TABLES[key]


@dataclass
class Filter:
    name: ClassVar[str]
    label: str | None = None  # key in manifest `filtered` counts (default: the filter's name)
    sources: list[str] | None = None  # apply only to these sources (default: all)
    kinds: list[Literal["text", "chat"]] | None = None  # apply only to these kinds (default: all)

    @property
    def key(self) -> str:
        return self.label or self.name

    def applies(self, source: str, kind: str) -> bool:
        return (self.sources is None or source in self.sources) and (self.kinds is None or kind in self.kinds)

    def keep(self, text: str) -> bool:
        raise NotImplementedError

    def setup(self, root: Path | None, normalize: Callable[[str], str] | None = None) -> None:
        """Load anything the filter needs from disk (paths relative to `root`).

        `normalize` is what the documents went through before `keep` sees them (prepare's and SFT's
        `Normalizer`): a filter holding text of its own (blocklist words) puts it through the same.
        """


@register("length")
@dataclass
class Length(Filter):
    min_chars: int = 1  # drop documents shorter than this (characters)
    max_chars: int | None = None  # drop documents longer than this

    def validate(self):
        if self.min_chars < 0:
            raise ConfigError(f"min_chars: need 0 <= min_chars, got {self.min_chars}")
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ConfigError(f"max_chars: must be >= min_chars ({self.min_chars}), got {self.max_chars}")

    def keep(self, text):
        return len(text) >= self.min_chars and (self.max_chars is None or len(text) <= self.max_chars)


@register("char_ratio")
@dataclass
class CharRatio(Filter):
    char_class: Literal["cjk", "han", "latin", "digit", "symbol", "whitespace"] = "symbol"
    min: float = 0.0  # keep when min <= share of this class among non-whitespace characters <= max
    max: float = 1.0  # (for `whitespace`: among all characters)

    def validate(self):
        for name in ("min", "max"):  # the field out of range, not always `min` (`max: 50` for 50%)
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.max < self.min:
            raise ConfigError(f"max: must be >= min ({self.min}), got {self.max}")

    def setup(self, root, normalize=None):
        _table("whitespace"), _table(self.char_class)  # built before the workers fork, shared with them
        if self.char_class == "symbol":
            _table("mark"), _table("alnum")

    def keep(self, text):
        cps = _codepoints(text)
        total = len(text) if self.char_class == "whitespace" else len(text) - _count("whitespace", cps)
        if total == 0:
            return self.min == 0.0
        hits = _symbol_count(cps) if self.char_class == "symbol" else _count(self.char_class, cps)
        share = hits / total
        return self.min <= share <= self.max


@register("script_share")
@dataclass
class ScriptShare(Filter):
    script: Literal["han", "cjk", "latin"] = "han"  # e.g. keep documents that are mostly Chinese
    min_share: float = 0.5  # keep when this script's share of all letters is >= min_share

    def validate(self):
        if not 0.0 <= self.min_share <= 1.0:
            raise ConfigError(f"min_share: must be in [0, 1], got {self.min_share}")

    def setup(self, root, normalize=None):
        _letters_of(self.script)  # built before the workers fork, shared with them

    def keep(self, text):
        cps = _codepoints(text)
        letters = _count("alpha", cps)  # letters of any script (str.isalpha; Han characters are alpha)
        if letters == 0:
            return self.min_share == 0.0
        # NOTE: the script's letters only: the kana block holds punctuation (・ U+30FB) and marks (゛),
        # which counted here gave shares above 1 for text with no kana letter at all.
        return int(np.count_nonzero(_letters_of(self.script)[cps])) / letters >= self.min_share



@register("max_line_length")
@dataclass
class MaxLineLength(Filter):
    max_chars: int = 10_000  # drop documents with any line longer than this (minified code, base64 blobs)

    def validate(self):
        if self.max_chars < 1:
            raise ConfigError(f"max_chars: must be >= 1, got {self.max_chars}")

    def keep(self, text):
        return max(map(len, text.split("\n"))) <= self.max_chars


@register("repeated_lines")
@dataclass
class RepeatedLines(Filter):
    # Gopher (Rae et al. 2021, table A1) values: boilerplate and spam repeat whole lines.
    max_line_frac: float = 0.3  # drop when duplicated non-empty lines / non-empty lines > this
    max_char_frac: float = 0.2  # drop when characters in duplicated lines / characters in lines > this

    def validate(self):
        for name in ("max_line_frac", "max_char_frac"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: must be in [0, 1]")

    def keep(self, text):
        lines = [ln.strip() for ln in text.split("\n")]
        lines = [ln for ln in lines if ln]
        if len(lines) < 2:
            return True
        counts = Counter(lines)
        dup_lines = sum(c - 1 for c in counts.values() if c > 1)  # copies beyond the first
        dup_chars = sum(len(ln) * (c - 1) for ln, c in counts.items() if c > 1)
        chars = sum(map(len, lines))
        return dup_lines / len(lines) <= self.max_line_frac and dup_chars / chars <= self.max_char_frac


@register("repeated_ngrams")
@dataclass
class RepeatedNgrams(Filter):
    # Character n-grams, so that Chinese (no spaces) and English are treated alike: 20 characters are
    # ~10-20 Chinese words or ~4 English words.
    n: int = 20  # n-gram length in characters
    max_frac: float = 0.3  # drop when the share of characters inside n-grams that occur 2+ times is > this

    def validate(self):
        if self.n < 1:
            raise ConfigError(f"n: must be >= 1, got {self.n}")
        if not 0.0 <= self.max_frac <= 1.0:
            raise ConfigError(f"max_frac: must be in [0, 1], got {self.max_frac}")

    def keep(self, text):
        n = self.n
        if len(text) < n + 1:
            return True
        # NOTE: vectorized over code points (a Python loop over n-grams is ~10x slower on Chinese).
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        m = len(cps) - n + 1
        h = np.zeros(m, dtype=np.uint64)
        for k in range(n):  # uint64 arithmetic wraps mod 2^64: a polynomial hash of the n-gram
            h = h * np.uint64(0x100000001B3) + cps[k : k + m]
        order = np.argsort(h)
        hs = h[order]
        same = hs[1:] == hs[:-1]
        dup = np.zeros(m, dtype=bool)  # (m,) in sorted order: equal to a neighbour = occurs 2+ times
        dup[1:] |= same
        dup[:-1] |= same
        starts = order[dup]
        if len(starts) == 0:
            return True
        cover = np.zeros(len(cps) + 1, dtype=np.int64)
        np.add.at(cover, starts, 1)
        np.add.at(cover, starts + n, -1)
        covered = np.count_nonzero(np.cumsum(cover[:-1]))  # characters inside a repeated n-gram
        return covered / len(cps) <= self.max_frac


@register("blocklist")
@dataclass
class Blocklist(Filter):
    words: list[str] = field(default_factory=list)  # words or phrases (matched as substrings)
    file: str | None = None  # more words, one per line (UTF-8), relative to the data root
    max_hits: int = 0  # drop when the document has more than this many occurrences
    ignore_case: bool = True

    def validate(self):
        if not any(self.words) and self.file is None:
            raise ConfigError("words: give `words` (non-empty) or `file`")
        if self.max_hits < 0:
            raise ConfigError(f"max_hits: must be >= 0, got {self.max_hits}")

    def setup(self, root, normalize=None):
        words = list(self.words)
        if self.file is not None:
            # (`~/lists/words.txt`: home, as in a shell; then absolute. `~words.txt`, no user of that name: as it is)
            path = Path(os.path.expanduser(self.file))
            path = path if root is None else Path(root) / path
            try:
                # NOTE: utf-8-sig, as the data readers: a BOM (Windows editors) kept on the first word made it
                # "\ufeff<word>", which no document contains unless control_chars removed it from the word too.
                words += [w.strip() for w in path.read_text(encoding="utf-8-sig").splitlines() if w.strip()]
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"file: cannot read blocklist {path} ({e})") from None
        had_words = any(words)
        if normalize is not None:
            # NOTE: documents are filtered after normalization: "澳門賭場" never matched a t2s-normalized
            # document, nor "ＦＲＥＥ" an NFKC one, unless the words go through the same normalizer.
            words = [normalize(w) for w in words]
        words = sorted({w for w in words if w}, key=len, reverse=True)  # longest first: 'abc' before 'ab'
        if not words:  # the empty pattern matches every text: each document would be dropped
            where = f"file: {path} has" if self.file is not None else "words: has"
            why = "every word is empty after normalization" if had_words else "only empty lines/strings"
            raise ConfigError(f"{where} no word ({why})")
        self._re = re.compile("|".join(map(re.escape, words)), re.IGNORECASE if self.ignore_case else 0)

    def keep(self, text):
        if self.max_hits == 0:
            return self._re.search(text) is None
        hits = 0
        for _ in self._re.finditer(text):
            hits += 1
            if hits > self.max_hits:
                return False
        return True


def build_filters(specs: list[dict[str, Any]], source_names: list[str] | None = None,
                  root: Path | None = None, setup: bool = False,
                  source_kinds: list[str] | None = None,
                  normalize: Callable[[str], str] | None = None) -> list[Filter]:
    """YAML specs -> filter objects; errors name `filters[i].field`. `setup=True` also loads files.

    `normalize`: the documents' normalizer, given to `Filter.setup` (blocklist words are normalized too).

    With `source_kinds` (one per name of `source_names`), a filter whose `sources` and `kinds` select
    no source is refused: it would run on nothing, which a typo in either list makes easy to miss.
    """
    out: list[Filter] = []
    # dedup's own drop counts live beside the filters' in `filtered`: a filter may not take their keys
    keys: set[str] = {"dedup_exact", "dedup_near"}
    for i, spec in enumerate(specs):
        where = f"filters[{i}]"
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"{where}: expected a mapping with `name` (one of {', '.join(sorted(FILTERS))})")
        params = dict(spec)
        name = params.pop("name")
        if not isinstance(name, str) or name not in FILTERS:
            raise ConfigError(f"{where}.name: unknown filter {name!r} (known: {', '.join(sorted(FILTERS))})")
        try:
            flt = from_dict(FILTERS[name], params)
        except ConfigError as e:
            raise ConfigError(f"{where}.{e}") from None
        for fname in ("sources", "kinds"):
            if getattr(flt, fname) == []:  # not null: a filter that applies to nothing
                raise ConfigError(f"{where}.{fname}: empty list (leave it out to apply to every {fname[:-1]})")
        if source_names is not None:
            for s in flt.sources or []:
                if s not in source_names:
                    raise ConfigError(f"{where}.sources: no source named {s!r}")
            if source_kinds is not None and flt.kinds is not None:
                if not any(flt.applies(s, k) for s, k in zip(source_names, source_kinds)):
                    which = f"none of the sources {flt.sources}" if flt.sources is not None else "no source"
                    raise ConfigError(f"{where}.kinds: {which} is of kind {flt.kinds}: the filter would apply to nothing")
        if flt.key in keys:
            raise ConfigError(f"{where}.label: {flt.key!r} is already used by another filter or by dedup; "
                              "set a distinct label")
        keys.add(flt.key)
        if setup:
            try:
                flt.setup(root, normalize)
            except ConfigError as e:
                raise ConfigError(f"{where}.{e}") from None
        out.append(flt)
    return out


def filter_params(flt: Filter) -> dict[str, Any]:
    return {"name": flt.name, **{f.name: getattr(flt, f.name) for f in dataclasses.fields(flt)}}
