"""SFT data: chat files -> mixed conversations -> ChatML token rows with label masks -> batches.

Reading reuses `steel.data.sources` (ShareGPT, Alpaca(+history), OpenAI messages; json/jsonl/zst/
parquet...) so SFT reads exactly what `steel data prepare` reads. Each conversation is rendered in
ChatML token by token:

    <|im_start|>{role}\\n{content}<|im_end|>\\n   per message, then <|endoftext|>

`steel chat` renders prompts with the tokenizer's chat template instead, so SFT first renders probe
conversations with that template (`template_default_system`): a default system message the template
inserts into conversations without one is inserted here too; any other difference is refused.

Labels (HF convention: label[t] is the token at t, -100 = no loss): by default only the assistant
turns carry loss -- their content and the `<|im_end|>` that ends them (the model must learn to stop);
`loss_on_prompt: true` trains on every token as pretraining did. Rows are either packed (several
conversations per row, each ending in EOS so Steel's `document_mask` keeps attention and positions
inside a conversation) or padded (one conversation per row, right-padded, pads carry no loss).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from steel.config import ConfigError, expand_home
from steel.data.config import NormalizeConfig

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
IGNORE = -100
_SEED_MUL = 1_000_003  # the epoch order's generator seed is seed * _SEED_MUL + epoch

log = logging.getLogger("steel")


@dataclass
class SftDataset:
    name: str  # label in logs and stats
    path: list[str]  # files or globs, relative to `root`
    chat_layout: Literal["sharegpt", "alpaca", "openai"] = "alpaca"  # record layout
    # file format (auto: from the suffix), as in `steel data prepare`; txt holds no chat records
    format: Literal["auto", "jsonl", "jsonl.zst", "jsonl.gz", "json", "parquet", "csv"] = "auto"
    fields: dict[str, str] = field(default_factory=dict)  # rename layout fields, e.g. {instruction: question}
    system: str | None = None  # system prompt for records that have none
    weight: float = 1.0  # repeat factor: 2 = every conversation twice, 0.5 = a seeded random half
    count: int | None = (
        None  # exactly this many conversations (seeded sample; repeats when more than available)
    )
    filters: list[dict[str, Any]] = field(
        default_factory=list
    )  # steel.data.filters specs, on the conversation's text

    def validate(self) -> None:
        from steel.data.chat import LAYOUT_FIELDS

        if not self.path:
            raise ConfigError("path: at least one file or glob is needed")
        if self.weight < 0:
            raise ConfigError("weight: must be >= 0")
        if self.count is not None and self.count < 0:
            raise ConfigError("count: must be >= 0")
        # NOTE: a misspelt key (`inputs:` for `input:`) was ignored: the layout read its default field, and the
        # renamed one (e.g. every record's context) was silently left out of the conversations.
        unknown = sorted(set(self.fields) - set(LAYOUT_FIELDS[self.chat_layout]))
        if unknown:
            raise ConfigError(f"fields.{unknown[0]}: not a field of chat_layout {self.chat_layout!r} "
                              f"(known: {', '.join(LAYOUT_FIELDS[self.chat_layout])})")
        for key, dotted in self.fields.items():
            if not isinstance(dotted, str) or not all(dotted.split(".")):
                raise ConfigError(f"fields.{key}: {dotted!r} is not a dotted field name (like `question` or `meta.q`)")
        from steel.data.filters import build_filters

        build_filters(self.filters, [self.name], source_kinds=["chat"])  # every SFT record is a chat


@dataclass
class SelfCognitionConfig:
    count: int = 0  # conversations to add (0 = none)
    name: str = "Steel"  # the model's name in the answers
    maker: str = "Steel 开发者"  # who made it
    template: str | None = (
        None  # identity.json-style file with {{name}}/{{author}}; default: built-in templates
    )

    def __post_init__(self) -> None:
        expand_home(self, "template")

    def validate(self) -> None:
        if self.count < 0:
            raise ConfigError("count: must be >= 0")


@dataclass
class SftDataConfig:
    datasets: list[SftDataset] = field(default_factory=list)  # the mixture
    self_cognition: SelfCognitionConfig = field(default_factory=SelfCognitionConfig)
    root: str = "."  # base directory of relative dataset paths
    seq_len: int = 2048  # tokens per row
    packing: bool = (
        True  # pack conversations into rows (document masking); false = one padded conversation per row
    )
    loss_on_prompt: bool = False  # also train on system/user tokens and the ChatML markers
    seed: int = 0  # mixture sampling and epoch order
    # Applied to every message content before filters and tokenization, with `steel data prepare`'s
    # defaults (NFC, control/zero-width chars, whitespace and CRLF; t2s off), so a chat file gives the
    # same text here as in a pretraining mix.
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)

    def __post_init__(self) -> None:
        # (the dataset paths expand `~` themselves, as `steel data prepare`'s: steel.data.sources.expand_paths)
        expand_home(self, "root")

    def validate(self) -> None:
        if not self.datasets and self.self_cognition.count == 0:
            raise ConfigError("data.datasets: list at least one dataset (or data.self_cognition.count > 0)")
        if self.seq_len < 8:
            raise ConfigError("data.seq_len: must be >= 8")
        # NOTE: the epoch order seeds torch's generator with seed * 1_000_003 + epoch (SftData._perm), which
        # must fit its 64 bits: a larger seed (a timestamp like 20261207153000) failed with "Overflow when
        # unpacking long" once the whole mixture had been read and tokenized.
        lo, hi = -(2**63 // _SEED_MUL), (2**64 - 1 - 2**32) // _SEED_MUL
        if not lo <= self.seed <= hi:
            raise ConfigError(f"data.seed: must be between {lo} and {hi}, got {self.seed}")
        names = [d.name for d in self.datasets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"data.datasets: duplicate name {dup[0]!r}")


# ----------------------------------------------------------------------------------------------------
# Rendering + label masking


class ChatTokenizer:
    """Encodes messages as ChatML token ids with a per-token "trainable" flag."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        ids = {}
        for t in (IM_START, IM_END, ENDOFTEXT):
            i = tokenizer.convert_tokens_to_ids(t)
            if not isinstance(i, int) or i < 0 or i == tokenizer.unk_token_id:
                raise ConfigError(
                    f"tokenizer: no special token {t} (SFT renders ChatML; use Qwen's or steel's tokenizer)"
                )
            ids[t] = i
        self.im_start, self.im_end, self.eos = ids[IM_START], ids[IM_END], ids[ENDOFTEXT]
        self.newline = self._enc("\n")

    def _enc(self, text: str) -> list[int]:
        """`text` as its ids inside a rendered conversation, where every piece follows a special token.

        NOTE: encoded after `<|im_start|>`, not alone: a SentencePiece-style tokenizer (Metaspace with
        prepend_scheme "first": Llama-2, Mistral, Yi) prepends "▁" to the first piece of a text only, so
        "user\\n" alone gave "▁user" where the conversation encoded once (as `steel chat` does) has "user".
        """
        if not text:
            return []
        ids = self.tok.encode(IM_START + text, add_special_tokens=False)
        if not ids or ids[0] != self.im_start:
            raise ConfigError(f"tokenizer: {IM_START} does not encode as its own token at the start of a text")
        return ids[1:]

    def encode(self, messages: list[dict], loss_on_prompt: bool = False) -> tuple[list[int], list[int]]:
        """-> (input_ids, labels); labels = input_ids where trained, else -100. Ends with EOS."""
        ids: list[int] = []
        labels: list[int] = []

        def add(tokens: list[int], train: bool) -> None:
            ids.extend(tokens)
            labels.extend(tokens if (train or loss_on_prompt) else [IGNORE] * len(tokens))

        for m in messages:
            assistant = m["role"] == "assistant"
            # Header and content are encoded as ONE text, as the chat template does: a content opening with
            # whitespace ("\n\n...") merges with the header's "\n" into one token, which encoding them apart
            # would split. Tokens the header alone encodes to (the common prefix) are template; the rest,
            # a merged token included, is content.
            head = self._enc(m["role"] + "\n")
            body = self._enc(m["role"] + "\n" + m["content"])
            n = 0
            while n < min(len(head), len(body)) and head[n] == body[n]:
                n += 1
            add([self.im_start] + body[:n], False)
            # NOTE: content and its <|im_end|> carry the loss; the header and the newline after
            # <|im_end|> are template, which the chat template writes at inference anyway.
            add(body[n:] + [self.im_end], assistant)
            add(self.newline, False)
        add([self.eos], loss_on_prompt)
        return ids, labels


# Probes of the chat template: short ASCII contents (normalization leaves SFT contents trimmed).
_PROBE_SYSTEM = {"role": "system", "content": "Be brief."}
_PROBE_TURNS = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "1+1?\nSay it."},
    {"role": "assistant", "content": "2"},
]

_PROBE_TOOL = [
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": "get_weather()"},
    {"role": "tool", "content": "Sunny."},
    {"role": "assistant", "content": "It is sunny."},
]


def template_default_system(tokenizer, tool_turns: bool = False) -> str | None:
    """The system message the tokenizer's chat template inserts when a conversation has none (None: none).

    SFT renders ChatML itself (token by token, for the label mask) while `steel chat` and `generate
    --chat` render with the tokenizer's chat template, so both must give the same text: probe
    conversations (no system message, a system message, two exchanges, a generation prompt) are
    rendered both ways. A default system turn the template inserts (`steel tokenizer qwen
    --default-system`, Qwen2.5's template) is returned for SFT to insert too; any other difference is a
    ConfigError naming the chat template. A tokenizer without a template gives None (ChatML).
    `tool_turns`: also probe a conversation with a tool turn (when the mixture has some).
    """
    from steel.data.chat import SPECIAL_MARKERS, render_chatml

    if not getattr(tokenizer, "chat_template", None):
        return None
    where = f"tokenizer: the chat template of {getattr(tokenizer, 'name_or_path', '') or 'the tokenizer'}"
    advice = (
        "SFT renders ChatML (<|im_start|>{role}\\n{content}<|im_end|>\\n per message, optionally after a default "
        "system turn) and `steel chat` prompts with the chat template, so the model would be prompted in a "
        "format it was not trained on; use a tokenizer with a ChatML chat template (`steel tokenizer qwen`)"
    )

    def render(messages: list[dict], generation: bool = False) -> str:
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
        except Exception as e:  # a Jinja error, e.g. a template that refuses system messages
            raise ConfigError(f"{where} fails on a probe conversation ({type(e).__name__}: {e}); {advice}") from None

    exchange = _PROBE_TURNS[:2]
    got, head, tail = render(exchange), f"{IM_START}system\n", f"{IM_END}\n" + render_chatml(exchange)
    default = None
    if got != render_chatml(exchange) and got.startswith(head) and got.endswith(tail) and len(got) >= len(head + tail):
        default = got[len(head) : len(got) - len(tail)]
        if any(m in default for m in SPECIAL_MARKERS):
            default = None  # not one system turn: refused below
    first = [{"role": "system", "content": default}] if default is not None else []
    probes = [
        ("a conversation without a system message", exchange, first + exchange, False),
        ("a conversation with a system message", [_PROBE_SYSTEM, *exchange], [_PROBE_SYSTEM, *exchange], False),
        ("two exchanges", _PROBE_TURNS, first + _PROBE_TURNS, False),
        ("a prompt for a reply (add_generation_prompt)", [_PROBE_SYSTEM, exchange[0]], [_PROBE_SYSTEM, exchange[0]], True),
    ]
    if tool_turns:
        # NOTE: Qwen2.5's template writes a tool turn as `<|im_start|>user\n<tool_response>...`: trained as
        # ChatML's `<|im_start|>tool\n...`, the model would read tool results at inference in a form it never saw.
        probes.append(("a conversation with a tool turn", _PROBE_TOOL, first + _PROBE_TOOL, False))
    for what, messages, chatml, generation in probes:
        want = render_chatml(chatml) + (f"{IM_START}assistant\n" if generation else "")
        got = render(messages, generation)
        if got != want:
            raise ConfigError(f"{where} renders {what} as {got[:300]!r}, SFT as {want[:300]!r}; {advice}")
    return default


# ----------------------------------------------------------------------------------------------------
# Reading and mixing


def read_dataset(ds: SftDataset, root: Path, st: dict, index: int = 0, normalize=None) -> list[list[dict]]:
    """All conversations of one dataset that parse and pass its filters; rejections/filters counted in `st`.

    `normalize` (a `steel.data.normalize.Normalizer`) is applied to every message content first.
    """
    from steel.data.chat import conversation_text
    from steel.data.config import DataConfig, SourceConfig
    from steel.data.filters import build_filters
    from steel.data.normalize import normalize_messages
    from steel.data.sources import SourceReader, detect_format, expand_paths

    src = SourceConfig(
        name=ds.name,
        path=list(ds.path),
        format=ds.format,
        kind="chat",
        chat_layout=ds.chat_layout,
        fields=dict(ds.fields),
        system=ds.system,
    )
    reader = SourceReader(src, DataConfig(sources=[src], root=str(root)))
    # setup: a blocklist loads its words (its `file` relative to `root`, like the data), normalized as the
    # conversations are; without it a blocklist filter crashed SFT on its first conversation
    filters = build_filters(ds.filters, [ds.name], root, setup=True, source_kinds=["chat"], normalize=normalize)
    st.update({"read": 0, "kept": 0, "rejected": {}, "filtered": {}, "examples": []})
    out = []
    shown: set[str] = set()  # rejection reasons with an example
    for path in expand_paths(src, root, index, where="data.datasets"):
        if ds.format == "auto" and detect_format(path) == "txt":
            # NOTE: the reader gives a .txt's text as one string, not a conversation (a TypeError traceback)
            raise ConfigError(f"data.datasets[{index}].path: {path} is a text file; SFT reads chat records "
                              "(json, jsonl, parquet, csv): set `format` if its records are JSON lines")
        for item in reader.read_file(path):
            st["read"] += 1
            doc, reason, detail = item.doc, item.reason, item.detail
            if doc is not None and normalize is not None:
                doc, reason = normalize_messages(normalize, doc)
                detail = "after normalization"
            if doc is None:
                st["rejected"][reason] = st["rejected"].get(reason, 0) + 1
                # the first of each reason too: a file that does not parse is one rejection (all its records),
                # which the first five rejections of another kind hid
                if len(st["examples"]) < 5 or reason not in shown:
                    # as `steel data prepare` logs one: "empty turn 1 (assistant) is empty" ran reason and detail together
                    st["examples"].append(f"{path}:{item.line} rejected ({reason})" + (f": {detail}" if detail else ""))
                    shown.add(reason)
                continue
            text = conversation_text(doc)
            failed = next((f for f in filters if not f.keep(text)), None)
            if failed is not None:
                st["filtered"][failed.key] = st["filtered"].get(failed.key, 0) + 1
                continue
            st["kept"] += 1
            out.append(doc)
    return out


def sample(convs: list, ds: SftDataset, rng: random.Random) -> list:
    """Apply the dataset's count or weight: whole copies first, then a seeded random remainder."""
    n = len(convs)
    want = ds.count if ds.count is not None else round(ds.weight * n)
    if n == 0 or want == 0:
        return []
    reps, rest = divmod(want, n)
    return convs * reps + rng.sample(convs, rest)


def _no_conversations(i: int, ds: SftDataset, st: dict) -> ConfigError:
    """The error for a listed dataset of which no record is usable (a typo in `fields`, the wrong layout)."""

    def counts(d: dict) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))

    parts = [f"rejected {counts(st['rejected'])}"] if st["rejected"] else []
    if st["filtered"]:
        parts.append(f"filtered {counts(st['filtered'])}")
    msg = f"data.datasets[{i}] ({ds.name}): no usable conversation in {st['read']} records"
    msg += f" ({'; '.join(parts)})" if parts else ""
    if st["examples"]:
        msg += f"; first rejected: {st['examples'][0]}"
    if st["rejected"]:
        msg += f"; check chat_layout ({ds.chat_layout}) and fields"
    return ConfigError(msg)


def build_conversations(cfg: SftDataConfig, stats: dict) -> list[tuple[str, list[dict]]]:
    """The mixture as (dataset name, messages), in a seeded shuffled order (name None: self-cognition).

    Fills `stats`: {"datasets": {name: {read, kept, rejected, filtered, examples, sampled}}, "self_cognition":
    {...}}; per-dataset counts have their own sub-dict so that no dataset name collides with another key.
    """
    from steel.data.normalize import Normalizer
    from steel.sft.selfcog import self_cognition

    rng = random.Random(cfg.seed)
    root = Path(cfg.root)
    normalize = Normalizer(cfg.normalize)
    mix: list[tuple[str, list[dict]]] = []
    per_ds = stats.setdefault("datasets", {})
    for i, ds in enumerate(cfg.datasets):
        st = per_ds[ds.name] = {}
        convs = read_dataset(ds, root, st, i, normalize)
        if not convs and (ds.count if ds.count is not None else ds.weight) > 0:
            raise _no_conversations(i, ds, st)
        chosen = sample(convs, ds, rng)
        if not chosen and ds.count is None and ds.weight > 0:  # it vanished from the mixture without a word
            raise ConfigError(f"data.datasets[{i}].weight: {ds.weight:g} x {len(convs)} conversations ({ds.name}) "
                              "rounds to none; raise it, or set count: N")
        st["sampled"] = len(chosen)
        mix += [(ds.name, c) for c in chosen]
    sc = cfg.self_cognition
    if sc.count:
        # relative to data.root like every other data path (it was read from the working directory)
        template = str(root / sc.template) if sc.template and not Path(sc.template).is_absolute() else sc.template
        convs = self_cognition(sc.name, sc.maker, sc.count, cfg.seed, template)
        convs = [[{"role": m["role"], "content": normalize(m["content"])} for m in c] for c in convs]
        stats["self_cognition"] = {"read": len(convs), "kept": len(convs), "sampled": len(convs)}
        mix += [(None, c) for c in convs]  # None: no dataset name can collide with it
    rng.shuffle(mix)
    return mix


def warn_rejections(cfg: SftDataConfig, stats: dict) -> None:
    """A warning per dataset with rejected records (their counts and the first `file:line` of each reason), and
    per dataset with conversations dropped for length.

    NOTE: at INFO, in the one-line stats only, a whole file lost (one that does not parse is one rejection)
    passed unnoticed. `steel sft` calls this on rank 0 only (every rank reads the same data).
    """
    for i, ds in enumerate(cfg.datasets):
        st = stats.get("datasets", {}).get(ds.name, {})
        if st.get("rejected"):
            log.warning("data.datasets[%d] (%s): %d of %d records rejected (%s): %s", i, ds.name,
                        sum(st["rejected"].values()), st["read"],
                        ", ".join(f"{k}: {v}" for k, v in st["rejected"].items()), "; ".join(st["examples"]))
    parts = [(f"data.datasets[{i}] ({ds.name})", stats.get("datasets", {}).get(ds.name, {}))
             for i, ds in enumerate(cfg.datasets)]
    for where, st in [*parts, ("data.self_cognition", stats.get("self_cognition", {}))]:
        if st.get("too_long"):
            log.warning("%s: %d of %d sampled conversations are longer than data.seq_len %d tokens: dropped",
                        where, st["too_long"], st["sampled"], cfg.seq_len)


# ----------------------------------------------------------------------------------------------------
# Rows and batches


def make_rows(
    encoded: list[tuple[Any, Any]],
    seq_len: int,
    packing: bool,
    pad_id: int,
    stats: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (input_ids, labels), each (N, seq_len). Conversations longer than seq_len are dropped (counted).

    `encoded`: per conversation (ids, labels), lists or 1-D integer arrays of one length.
    Packing fills rows greedily in order and never splits a conversation; the rest of a row is EOS
    padding with no loss (a pad "document" of its own under document masking).

    NOTE: the rows are laid out first (which conversations each holds: 8 bytes per conversation), then
    written straight into the two tensors. Each row was built as a pair of Python lists, concatenated
    conversation by conversation: 16 bytes per token more beside the tensors (8 GB at 500M SFT tokens).
    """
    from array import array

    convs = array("q")  # the conversations that fit, in row order
    bounds = array("q", [0])  # row r holds convs[bounds[r]:bounds[r + 1]]
    too_long = 0
    cur = 0  # tokens in the row being filled
    for j, (ids, _) in enumerate(encoded):
        n = len(ids)
        if n > seq_len:
            too_long += 1
            continue
        if (not packing or cur + n > seq_len) and cur:
            bounds.append(len(convs))
            cur = 0
        convs.append(j)
        cur += n
    if cur:
        bounds.append(len(convs))
    if stats is not None:
        stats["too_long_dropped"] = stats.get("too_long_dropped", 0) + too_long
    if len(bounds) == 1:
        raise ConfigError(f"seq_len: no conversation fits in {seq_len} tokens ({too_long} too long)")
    input_ids = torch.full((len(bounds) - 1, seq_len), pad_id, dtype=torch.long)
    labels = torch.full((len(bounds) - 1, seq_len), IGNORE, dtype=torch.long)
    for r in range(len(bounds) - 1):
        members = convs[bounds[r] : bounds[r + 1]]
        for out, k in ((input_ids, 0), (labels, 1)):
            row = np.concatenate([np.asarray(encoded[j][k], dtype=np.int64) for j in members])
            out[r, : len(row)] = torch.from_numpy(row)
    return input_ids, labels


class SftData:
    """The trainer's data object: seeded epoch order over fixed rows, exact resume from {seed, epoch, consumed}.

    Rank r of W takes positions r, r + W, ... of the global order, so the global batch does not depend on W.
    """

    def __init__(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        micro_batch: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.input_ids, self.labels = input_ids, labels
        self.micro_batch, self.seed, self.rank, self.world_size = micro_batch, seed, rank, world_size
        self.epoch, self.consumed = 0, 0
        self._order = self._perm(0)

    def _perm(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * _SEED_MUL + epoch)
        return torch.randperm(len(self.input_ids), generator=g)

    def next_batch(self) -> dict[str, torch.Tensor]:
        idx = []
        for _ in range(self.micro_batch):
            pos = self.consumed + self.rank
            while pos >= len(self._order):
                pos -= len(self._order)
                self.epoch += 1
                self.consumed -= len(self._order)
                self._order = self._perm(self.epoch)
            idx.append(int(self._order[pos]))
            self.consumed += self.world_size
        return {"input_ids": self.input_ids[idx], "labels": self.labels[idx]}

    @functools.cached_property
    def rows_md5(self) -> str:
        """MD5 of the rows (token ids and labels): the checkpoint's position is only valid for the same rows."""
        h = hashlib.md5()
        for t in (self.input_ids, self.labels):
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.contiguous().numpy().data)
        return h.hexdigest()

    def state_dict(self) -> dict:
        return {
            "kind": "sft",  # a pretraining loader's state says "pretrain": SFT refuses its run_dir
            "seed": self.seed,
            "epoch": self.epoch,
            "consumed": self.consumed,
            "rows": len(self.input_ids),
            "rows_md5": self.rows_md5,
            "micro_batch": self.micro_batch,  # read by the resume messages (global batch)
            "world_size": self.world_size,
            "order_md5": self._order_md5(),
            "torch": torch.__version__,
        }

    def _order_md5(self) -> str:
        """MD5 of the current epoch's row order: `torch.randperm` draws it, and torch does not promise the same
        draw across versions; another order at a resume would skip and repeat rows of the epoch silently."""
        return hashlib.md5(self._order.to(torch.int64).numpy().tobytes()).hexdigest()

    def load_state_dict(self, state: dict) -> None:
        if state.get("rows") != len(self.input_ids):
            raise ConfigError(
                f"sft data: the checkpoint saw {state.get('rows')} rows, the config now gives {len(self.input_ids)}"
            )
        if state.get("rows_md5", self.rows_md5) != self.rows_md5:  # checkpoints before rows_md5: not checked
            raise ConfigError("sft data: the checkpoint's rows differ from those the config now gives")
        self.seed, self.epoch, self.consumed = state["seed"], state["epoch"], state["consumed"]
        if state.get("world_size", self.world_size) != self.world_size and self.rank == 0:  # as pretraining says it
            log.info("sft data: world size %d -> %d, the global row order is re-split", state["world_size"],
                     self.world_size)
        self._order = self._perm(self.epoch)
        if state.get("order_md5", self._order_md5()) != self._order_md5():  # checkpoints before 2026-12-07: none
            raise ConfigError(
                f"sft data: torch {torch.__version__} draws another row order for epoch {self.epoch + 1} than torch "
                f"{state.get('torch', '?')}, which wrote the checkpoint; resuming would skip and repeat rows of the "
                "epoch: resume with that torch version"
            )


def build_sft_rows(cfg: SftDataConfig, tokenizer, stats: dict) -> tuple[torch.Tensor, torch.Tensor]:
    ct = ChatTokenizer(tokenizer)
    default_system = template_default_system(tokenizer)  # before reading any data: a bad template stops here
    mix = build_conversations(cfg, stats)
    tools: dict[str | None, int] = {}
    for name, m in mix:
        if any(t["role"] == "tool" for t in m):
            tools[name] = tools.get(name, 0) + 1
    if tools:
        try:
            template_default_system(tokenizer, tool_turns=True)
        except ConfigError as e:
            held = ", ".join(f"{n}: {c:,}" for n, c in tools.items())
            raise ConfigError(f"{e} (conversations with tool turns: {held})") from None
    if default_system is not None:
        # The chat template opens every prompt without a system message with this one: so do the rows.
        added = [i for i, (_name, m) in enumerate(mix) if not m or m[0]["role"] != "system"]
        for i in added:
            mix[i] = (mix[i][0], [{"role": "system", "content": default_system}, *mix[i][1]])
        stats["default_system"] = {"content": default_system, "conversations": len(added)}
        log.info(
            "sft data: the tokenizer's chat template adds the system message %r to conversations without one; "
            "added to %d of %d conversations as at inference",
            default_system, len(added), len(mix),
        )
    # NOTE: each conversation's ids and labels as int32 arrays (8 bytes per token), its messages released once
    # encoded: as the Python lists `encode` returns, every conversation was held at ~36 bytes per token (a list
    # slot in each list and an int object per id) beside its text until the rows were built (18 GB at 500M tokens,
    # on every rank).
    encoded = []
    for i, (name, m) in enumerate(mix):
        ids, labels = ct.encode(m, cfg.loss_on_prompt)
        encoded.append((np.array(ids, dtype=np.int32), np.array(labels, dtype=np.int32)))
        mix[i] = (name, None)
    # Conversations longer than seq_len are dropped (make_rows): counted per dataset, and a listed
    # dataset none of whose sampled conversations fits is an error (it vanished from the mixture silently).
    per_ds = stats.setdefault("datasets", {})
    for (name, _), (ids, _) in zip(mix, encoded):
        if len(ids) > cfg.seq_len:
            st = stats["self_cognition"] if name is None else per_ds[name]
            st["too_long"] = st.get("too_long", 0) + 1
    parts = [(f"data.datasets[{i}] ({ds.name})", per_ds.get(ds.name, {})) for i, ds in enumerate(cfg.datasets)]
    for where, st in [*parts, ("data.self_cognition", stats.get("self_cognition", {}))]:
        if st.get("sampled") and st.get("too_long", 0) == st["sampled"]:
            raise ConfigError(
                f"{where}: none of its {st['sampled']} sampled conversations fits in data.seq_len "
                f"{cfg.seq_len} tokens; raise data.seq_len or leave it out"
            )
    return make_rows(encoded, cfg.seq_len, cfg.packing, ct.eos, stats)
