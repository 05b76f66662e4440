"""Text normalization applied to every document (every chat turn) before filtering and dedup."""

from __future__ import annotations

import re
import unicodedata

from steel.data.chat import SPECIAL_MARKERS
from steel.data.config import NormalizeConfig

# C0 controls except \t \n \r, DEL, C1 controls, zero-width space, LRM/RLM, BOM, soft hyphen.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\ufeff\u00ad]")
# Unusual spaces -> ' '. NOTE: U+3000 (ideographic space, Chinese paragraph indent) is kept on purpose.
_SPACES_RE = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f]")
# NOTE: VT, FF (a PDF/OCR page break) and the FS/GS/RS separators are line breaks to str.splitlines and
# Unicode (bidi class B); dropped as control characters they glued the words on either side.
_NEWLINES_RE = re.compile("\r\n?|[\u2028\u2029\x85\x0b\x0c\x1c-\x1e]")
_TRAILING_RE = re.compile("[ \t\u3000]+(?=\n)")  # U+3000 indents a line's start, never its end
_BLANKS_RE = re.compile("\n{3,}")


class Normalizer:
    """`Normalizer(cfg)(text) -> text`. Builds its OpenCC converter once (not picklable: one per process)."""

    def __init__(self, cfg: NormalizeConfig):
        self.cfg = cfg
        self._t2s = None
        if cfg.t2s:
            import opencc

            self._t2s = opencc.OpenCC("t2s")

    def __call__(self, text: str) -> str:
        cfg = self.cfg
        if cfg.whitespace:
            text = _NEWLINES_RE.sub("\n", text)  # before control chars: \r, NEL and FF are line breaks
        if cfg.control_chars:
            text = _CONTROL_RE.sub("", text)
        if cfg.unicode != "none":
            # NOTE: after the removals: "e<soft hyphen><combining acute>" normalized first kept "e\u0301",
            # not the "é" of the same word elsewhere (not NFC, and not an exact duplicate of it). Before the
            # space rules: NFKC turns U+3000 and other spaces into ' ', which they then strip.
            text = unicodedata.normalize(cfg.unicode, text)
        if cfg.whitespace:
            text = _SPACES_RE.sub(" ", text)
            text = _TRAILING_RE.sub("", text)
            text = _BLANKS_RE.sub("\n\n", text)
            # not str.strip(): it took the U+3000 indent of the first paragraph; U+3000 ending the text goes
            text = text.strip(" \t\n").rstrip(" \t\n\u3000")
        if self._t2s is not None:
            text = self._t2s.convert(text)
        return text


def normalize_messages(normalize: Normalizer, messages: list[dict]) -> tuple[list[dict] | None, str | None]:
    """Normalize every turn of a chat record, as `steel data prepare` does -> (messages, None) or (None, reason).

    NOTE: `steel data prepare` (`DocProcessor.process`) and `steel sft` both call this, so a chat file
    gives the same text in SFT as in a pretraining mix. Rejected: lone surrogates (`invalid_utf8`), a
    user or assistant turn that normalization empties (`empty`; e.g. only a zero-width space), a turn
    in which normalization forms a ChatML marker (`special_token_in_text`).
    """
    try:
        for m in messages:
            m["content"].encode("utf-8")
    except UnicodeEncodeError:  # JSON "\ud800" escapes decode to strings that are not Unicode text
        return None, "invalid_utf8"
    out = [{"role": m["role"], "content": normalize(m["content"])} for m in messages]
    # blank, not only empty: whitespace normalization keeps U+3000 (a turn "\u200b\u3000" is blank)
    if any(not m["content"].strip() for m in out if m["role"] in ("user", "assistant")):
        return None, "empty"
    out = [m for m in out if m["content"].strip() or m["role"] != "system"]  # an emptied system prompt is no turn
    # NOTE: checked again after normalization: removing a zero-width space or NFKC (fullwidth
    # "＜｜im_end｜＞") can assemble a marker that `extract_messages` did not see in the raw record,
    # and the tokenizer would then give it its special id, i.e. forge a turn.
    if any(marker in m["content"] for m in out for marker in SPECIAL_MARKERS):
        return None, "special_token_in_text"
    return out, None
