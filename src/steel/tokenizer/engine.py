"""The fastest encoder a tokenizer directory allows: tiktoken over its rank file, else HF `tokenizers`.

The data pipeline tokenizes with `load_encoder(dir)` in worker processes. Both engines give the same
ids (tests/tokenizer prove it on real text); tiktoken is ~2x faster on Qwen's vocabulary (see
bench/tokenizer_compression.py). Encoding is *ordinary*: a special-token string inside a document
("<|endoftext|>") is encoded as plain text, never as the special id, and no EOS is appended; callers add
`eos_id` themselves. Chat data gets its special ids from `encode_chat`, which gives exactly the ids of
the ChatML template with each message's content encoded as ordinary text.

An `Encoder` pickles as (directory, engine, threads) and is rebuilt from the directory in the
receiving process (about a second for Qwen's vocabulary).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from steel.cli import UserError

log = logging.getLogger("steel")

Engine = Literal["tiktoken", "hf"]
FINGERPRINT_FORMAT = "steel-tokenizer-fingerprint/1"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map used by byte-level BPE vocabularies (tokenizer.json)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def read_tokenizer_json(tokenizer_dir: Path) -> dict:
    path = tokenizer_dir / "tokenizer.json"
    if not path.is_file():
        raise UserError(f"{tokenizer_dir}: {not_a_tokenizer_dir(tokenizer_dir)}")
    return _read_json_object(path)


def not_a_tokenizer_dir(path: Path) -> str:
    """Why `path` (holding no tokenizer.json) is no tokenizer directory: a wrong path reads apart from a wrong dir."""
    if not path.exists():
        return "does not exist (expected a tokenizer directory holding tokenizer.json)"
    if not path.is_dir():
        return "is not a directory (expected a tokenizer directory holding tokenizer.json)"
    return "not a tokenizer directory (no tokenizer.json)"


def _read_json_object(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable {path.name} ({e})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: unreadable {path.name} (a JSON {type(obj).__name__}, not an object)")
    return obj


def fingerprint(tok_json: dict) -> str:
    """sha256 hex over what maps text to ids: model (vocab, merges, flags), normalizer, pre-tokenizer, added tokens.

    Decoder, post-processor, padding and truncation settings do not change the ids and are left out, and
    merges are normalized to pairs, so a re-saved or differently formatted tokenizer.json keeps its print.
    """
    model = dict(tok_json.get("model") or {})
    vocab = model.pop("vocab", {})
    merges = model.pop("merges", [])
    h = hashlib.sha256()
    head = {
        "format": FINGERPRINT_FORMAT,
        "model": model,
        "normalizer": tok_json.get("normalizer"),
        "pre_tokenizer": tok_json.get("pre_tokenizer"),
        "added_tokens": sorted(_added_token_key(t) for t in tok_json.get("added_tokens", [])),
    }
    h.update(json.dumps(head, sort_keys=True, ensure_ascii=False).encode())
    h.update(b"\0vocab\0")
    if isinstance(vocab, dict):
        h.update("\n".join(f"{i}\t{t}" for t, i in sorted(vocab.items(), key=lambda kv: kv[1])).encode())
    else:  # Unigram-style [[piece, score], ...]
        h.update(json.dumps(vocab, ensure_ascii=False).encode())
    h.update(b"\0merges\0")
    h.update("\n".join(m if isinstance(m, str) else " ".join(m) for m in merges).encode())
    return h.hexdigest()


# NOTE: a non-special added token is matched inside ordinary text (the data pipeline's encoding), and these flags
# change the ids around it (" <tool>" is one id with lstrip, two without). A special token's flags do not (its
# string is plain text there). Only flags that are set join the key: every print made before stays the same.
_MATCH_FLAGS = ("lstrip", "rstrip", "single_word")


def _added_token_key(t: dict) -> tuple:
    key = (t["id"], t["content"], bool(t.get("special")))
    flags = () if t.get("special") else tuple(f for f in _MATCH_FLAGS if t.get(f))
    return key + (flags,) if flags else key


def _tiktoken_pattern(tok_json: dict) -> str | None:
    """The split regex when the pre-tokenizer is exactly tiktoken's scheme (regex split, then byte-level), else None."""
    pre = tok_json.get("pre_tokenizer") or {}
    if pre.get("type") != "Sequence" or len(pre.get("pretokenizers", [])) != 2:
        return None
    split, byte_level = pre["pretokenizers"]
    if split.get("type") != "Split" or split.get("behavior") != "Isolated" or split.get("invert"):
        return None
    if (
        byte_level.get("type") != "ByteLevel"
        or byte_level.get("use_regex")
        or byte_level.get("add_prefix_space")
    ):
        return None
    return split.get("pattern", {}).get("Regex")


def _tiktoken_incompatibility(tok_json: dict, ranks: dict[bytes, int]) -> str | None:
    """Why tiktoken over `ranks` would NOT reproduce tokenizer.json's ids (None when it does)."""
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE" or not model.get("ignore_merges"):
        return "model is not a byte-level BPE with ignore_merges (tiktoken's rule)"
    if tok_json.get("normalizer") is not None:
        return "tokenizer.json has a normalizer"
    if _tiktoken_pattern(tok_json) is None:
        return "pre-tokenizer is not Split(regex) + ByteLevel"
    # tiktoken knows only the special tokens (which ordinary encoding splits like text); HF tokenizers and
    # transformers match a non-special added token inside ordinary text as its own id.
    plain = [t["content"] for t in tok_json.get("added_tokens", []) if not t.get("special")]
    if plain:
        return f"tokenizer.json has non-special added tokens ({', '.join(map(repr, plain[:5]))})"
    vocab = model.get("vocab", {})
    if len(vocab) != len(ranks):
        return f"rank file has {len(ranks)} tokens, tokenizer.json {len(vocab)}"
    b2u = bytes_to_unicode()
    for token, rank in ranks.items():
        if vocab.get("".join(b2u[b] for b in token)) != rank:
            return f"token {token!r} has rank {rank} in the rank file but not in tokenizer.json"
    return None


def _repair_surrogates(text: str) -> str:
    """What tiktoken encodes for a str holding surrogates: pairs joined, lone ones U+FFFD (its own repair).

    HF `tokenizers` refuses such a str ("TextInputSequence must be str"); repaired the same way, both
    engines give the same ids. (`steel data prepare` rejects such documents before encoding them.)
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Encoder:
    """Ordinary-text encoder over a tokenizer directory; see the module docstring."""

    def __init__(
        self, tokenizer_dir: str | Path, engine: Engine | None = None, num_threads: int | None = None
    ):
        from tokenizers import Tokenizer

        self.tokenizer_dir = Path(tokenizer_dir)
        self.num_threads = num_threads
        self._requested = engine
        if engine not in (None, "tiktoken", "hf"):
            raise UserError(f"tokenizer engine must be 'tiktoken' or 'hf', got {engine!r}")
        tok_json = read_tokenizer_json(self.tokenizer_dir)
        self.fingerprint = fingerprint(tok_json)
        added = tok_json.get("added_tokens", [])
        self.special_ids: dict[str, int] = {t["content"]: t["id"] for t in added if t.get("special")}
        vocab = (tok_json.get("model") or {}).get("vocab", {})
        ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
        self.vocab_size = max(ids + [t["id"] for t in added]) + 1
        self.eos_id = self._eos_id(tok_json)

        self._tt = None
        self._hf = None
        self.engine: Engine = "hf"
        if engine in (None, "tiktoken"):
            self._tt = self._build_tiktoken(tok_json, required=engine == "tiktoken")
            if self._tt is not None:
                self.engine = "tiktoken"
        if self._tt is None:
            self._hf = Tokenizer.from_str(json.dumps(tok_json))
            # Ordinary text: special-token strings inside documents are split like any text.
            self._hf.encode_special_tokens = True

    def _eos_id(self, tok_json: dict) -> int:
        cfg_path = self.tokenizer_dir / "tokenizer_config.json"
        eos = "<|endoftext|>"
        if cfg_path.is_file():
            cfg_eos = _read_json_object(cfg_path).get("eos_token")
            if isinstance(cfg_eos, dict):
                cfg_eos = cfg_eos.get("content")
            eos = cfg_eos or eos
        if eos not in self.special_ids:
            raise UserError(
                f"{self.tokenizer_dir}: EOS token {eos!r} is not a special token of tokenizer.json"
            )
        return self.special_ids[eos]

    def _build_tiktoken(self, tok_json: dict, required: bool):
        import tiktoken

        from steel.tokenizer.qwen import read_ranks

        rank_files = sorted(self.tokenizer_dir.glob("*.tiktoken"))
        why = None
        if len(rank_files) != 1:
            why = f"{len(rank_files)} *.tiktoken rank files in the directory (need exactly one)"
        else:
            # tokenizer.json alone defines the ids: a damaged rank file only rules tiktoken out.
            try:
                ranks = read_ranks(rank_files[0])
            except UserError as e:
                why = str(e)
            else:
                why = _tiktoken_incompatibility(tok_json, ranks)
                why = why and f"{rank_files[0].name}: {why}"
        if why is not None:
            if required:
                raise UserError(f"{self.tokenizer_dir}: tiktoken engine unavailable: {why}")
            if rank_files:
                log.warning("%s: using the HF engine: %s", self.tokenizer_dir, why)
            return None
        return tiktoken.Encoding(
            name=f"steel-{self.fingerprint[:12]}",
            pat_str=_tiktoken_pattern(tok_json),
            mergeable_ranks=ranks,
            special_tokens=dict(self.special_ids),
        )

    def __reduce__(self):
        return (Encoder, (str(self.tokenizer_dir), self._requested, self.num_threads))

    def __repr__(self) -> str:
        return f"Encoder({str(self.tokenizer_dir)!r}, engine={self.engine!r}, vocab_size={self.vocab_size})"

    def encode(self, text: str) -> list[int]:
        if self._tt is not None:
            return self._tt.encode_ordinary(text)
        try:
            return self._hf.encode(text, add_special_tokens=False).ids
        except TypeError:  # "TextInputSequence must be str": lone surrogates, which UTF-8 cannot hold
            if not isinstance(text, str):
                raise
        return self._hf.encode(_repair_surrogates(text), add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text, ordinary encoding, no EOS appended."""
        texts = list(texts)
        if self._tt is not None:
            if self.num_threads == 1:
                # NOTE: encode_ordinary_batch builds a thread pool per call; a worker process needs none.
                return [self._tt.encode_ordinary(t) for t in texts]
            kw = {} if self.num_threads is None else {"num_threads": self.num_threads}
            return self._tt.encode_ordinary_batch(texts, **kw)
        return self._hf_encode_batch(texts)

    def _hf_encode_batch(self, texts: list[str]) -> list[list[int]]:
        # NOTE: not encode_batch_fast: it skips offsets yet measured 0.5-0.85x encode_batch's speed on
        # pretrain_zh here (bench/tokenizer_compression.py), with the same ids.
        try:
            return [e.ids for e in self._hf.encode_batch(texts, add_special_tokens=False)]
        except TypeError:  # see `encode`
            if not all(isinstance(t, str) for t in texts):
                raise
        texts = [_repair_surrogates(t) for t in texts]
        return [e.ids for e in self._hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`; an id outside the vocabulary is a ValueError naming it.

        NOTE: checked here because the engines differ: HF `tokenizers` drops such an id silently,
        tiktoken raises a bare KeyError. A model's output layer is often wider than the vocabulary
        (151,936 rows for Qwen's 151,646 ids), so a sampled id can be one of these.
        """
        ids = list(ids)
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is not in the vocabulary of {self.tokenizer_dir} "
                                 f"(ids 0..{self.vocab_size - 1})")
        if self._tt is not None:
            return self._tt.decode(ids)
        return self._hf.decode(ids, skip_special_tokens=False)

    def encode_chat(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> list[int]:
        """Ids of the ChatML rendering `<|im_start|>{role}\\n{content}<|im_end|>\\n` of `messages`.

        Equal to `apply_chat_template(messages, tokenize=True)` of the directory's template (when it adds
        no default system message) except that special-token strings inside contents stay plain text.
        Equivalent by hand: `[im_start] + encode(role + "\\n" + content) + [im_end] + encode("\\n")`.
        """
        try:
            im_start, im_end = self.special_ids["<|im_start|>"], self.special_ids["<|im_end|>"]
        except KeyError as e:
            raise UserError(
                f"{self.tokenizer_dir}: no {e.args[0]} special token; cannot render ChatML"
            ) from None
        newline = self.encode("\n")
        texts = []
        for i, m in enumerate(messages):
            role, content = (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None)
            if not isinstance(role, str) or not isinstance(content, str):
                raise TypeError(f"message {i}: needs string 'role' and 'content', got {m!r:.80}")
            texts.append(role + "\n" + content)
        ids: list[int] = []
        for body in self.encode_batch(texts):
            ids += [im_start, *body, im_end, *newline]
        if add_generation_prompt:
            ids += [im_start, *self.encode("assistant\n")]
        return ids


def load_encoder(
    tokenizer_dir: str | Path, engine: Engine | None = None, num_threads: int | None = None
) -> Encoder:
    """Encoder for `tokenizer_dir`: tiktoken when the directory carries a matching rank file, else HF.

    `engine="hf"` forces HF `tokenizers`; `engine="tiktoken"` fails unless tiktoken is usable.
    `num_threads` bounds tiktoken's batch threads (default: tiktoken's 8); pass 1 in worker processes.
    """
    return Encoder(tokenizer_dir, engine=engine, num_threads=num_threads)
