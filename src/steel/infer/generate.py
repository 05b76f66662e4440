"""Token-by-token generation with a KV cache, sampling controls and streaming text output.

`generate_ids` is a small explicit decoding loop (rather than `model.generate`) so that streaming,
stop tokens and the sampling rules are ours and testable: the first step runs the whole prompt and
keeps the model's key/value cache, later steps feed one token. It works with any HF causal LM that
returns its cache (`cache`; `past_key_values` before transformers 5.25; Steel's model included);
`use_cache=False` recomputes the full sequence each step and must give the same greedy tokens (tested).
A Steel model with `document_mask` is fed the last EOS-ended document only (all it reads of the sequence).

Prompt plus reply never exceed the model's `max_position_embeddings` (RoPE would extrapolate into
garbage without a word): a prompt that leaves no room is refused, and generation that reaches the
limit stops there with stop reason `max_positions`.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Literal

import torch

from steel.cli import UserError
from steel.config import ConfigError
from steel.infer.load import accepts, max_positions, output_cache

# Why generation ended: a stop token, --max-new-tokens, or the model's context (max_position_embeddings).
StopReason = Literal["stop_token", "max_new_tokens", "max_positions"]


@dataclass
class SamplingOptions:
    max_new_tokens: int = 256  # stop after this many new tokens
    temperature: float = 0.7  # 0 = greedy (argmax)
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    top_p: float = 1.0  # keep the smallest set with this much probability; 1 = off
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the sequence (CTRL rule, as HF)
    seed: int | None = None  # sampling seed; None = nondeterministic

    def validate(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens: must be >= 1")
        # NOTE: NaN passes every `<` test and an infinite temperature turns the logits into NaN or a
        # uniform draw: refuse non-finite floats by name instead of sampling garbage.
        for name in ("temperature", "top_p", "repetition_penalty"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name}: must be a finite number, got {getattr(self, name)}")
        if self.temperature < 0:
            raise ConfigError("temperature: must be >= 0")
        if self.top_k < 0:
            raise ConfigError("top_k: must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p: must be in (0, 1]")
        if self.repetition_penalty <= 0:
            raise ConfigError("repetition_penalty: must be > 0")
        # torch.Generator.manual_seed takes a 64-bit value; a larger one was a ValueError traceback.
        if self.seed is not None and not -(2**63) <= self.seed < 2**64:
            raise ConfigError(f"seed: must be in [-2**63, 2**64), got {self.seed}")


def stop_token_ids(tokenizer) -> list[int]:
    """`<|im_end|>` (end of a ChatML turn) and the tokenizer's EOS, whichever exist."""
    ids = []
    for tok in ("<|im_end|>", "<|endoftext|>"):
        t = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(t, int) and t != tokenizer.unk_token_id and t >= 0:
            ids.append(t)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def model_stop_ids(model, tokenizer) -> list[int]:
    """`stop_token_ids`, then the EOS ids of the model's generation_config.json when one was written for
    it (not derived from config.json): a stock chat model may end its turn with another id (Gemma's
    `<end_of_turn>`, Phi-3's `<|end|>`)."""
    ids = stop_token_ids(tokenizer)
    gen = getattr(model, "generation_config", None)
    if gen is not None and not getattr(gen, "_from_model_config", True):
        eos = gen.eos_token_id
        for t in eos if isinstance(eos, (list, tuple)) else [eos]:
            if isinstance(t, int) and t >= 0 and t not in ids:
                ids.append(t)
    return ids


def token_count(tokenizer) -> int:
    """How many ids the tokenizer has text for: its largest id + 1 (added tokens included). NOTE: not
    `get_vocab()` (0.07-0.15 s for Qwen's, at every reply of a chat)."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return max(len(tokenizer), max(added, default=-1) + 1)


def chat_prompt_ids(tokenizer, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
    """Token ids of a conversation rendered with the tokenizer's chat template (ChatML for Steel).

    Only the template's own markers become special ids: a message content is plain text, as in SFT
    data (which rejects contents holding a marker), so a user typing `<|im_end|>\\n<|im_start|>system`
    cannot forge a turn. A conversation whose contents hold no special-token string gets the ids of
    `apply_chat_template(..., tokenize=True)` (tested).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')}: no chat template (tokenizer_config.json chat_template)"
        )
    try:
        from jinja2.exceptions import TemplateError, TemplateSyntaxError
    except ImportError:  # (transformers renders templates with jinja2; without it nothing is raised by one)
        TemplateError = TemplateSyntaxError = ()

    specials = _special_tokens(tokenizer)
    contents = [m["content"] for m in messages if isinstance(m.get("content"), str)]
    try:
        if any(s in c for c in contents for s in specials):
            return _ids_with_plain_contents(tokenizer, messages, add_generation_prompt, specials)
        text = tokenizer.apply_chat_template(
            messages, add_generation_prompt=add_generation_prompt, tokenize=False
        )
    except TemplateSyntaxError as e:
        # A template that does not compile refuses every conversation: "refuses this conversation" sent the
        # user to rewrite an input that was never at fault.
        raise UserError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')}: its chat template is not valid Jinja "
            f"(line {e.lineno}: {e.message})"
        ) from None
    except TemplateError as e:
        # A stock template refuses some conversations by `raise_exception` (Gemma's and Mistral's: "System
        # role not supported", roles that do not alternate): that is the user's input, not a Steel bug.
        raise UserError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')}: its chat template refuses this "
            f"conversation: {e}"
        ) from None
    # The template writes the special tokens as text; encoding it must not add a BOS of its own.
    return tokenizer.encode(text, add_special_tokens=False)


def _special_tokens(tokenizer) -> dict:
    """{text: AddedToken} of the tokenizer's special added tokens (the strings encode turns into one id)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    found = {t.content: t for t in added.values() if getattr(t, "special", False) and t.content}
    for text in getattr(tokenizer, "all_special_tokens", ()):
        found.setdefault(text, None)
    return found


def _ids_with_plain_contents(tokenizer, messages: list[dict], add_generation_prompt: bool, specials: dict) -> list[int]:
    """`chat_prompt_ids` of a conversation whose contents hold special-token strings.

    Each such string in a content is swapped for a private-use placeholder, the template renders the
    conversation, and the text is cut at the special tokens left (the template's): those become their
    ids, the text between them (placeholders restored) is encoded with `split_special_tokens=True`.
    For contents without special strings this is exactly how `encode` splits a text at added tokens.
    """
    texts = sorted(specials, key=len, reverse=True)  # the longest first, as added-token matching does
    seen = [m["content"] for m in messages if isinstance(m.get("content"), str)] + [str(tokenizer.chat_template)]
    # NOTE: two private-use characters that neither a content nor the template holds frame the
    # placeholder `<open>index<close>`.
    free = (chr(c) for c in range(0xE000, 0xF8FF) if not any(chr(c) in x for x in seen))
    open_, close = next(free), next(free)
    hide = re.compile("|".join(re.escape(t) for t in texts))
    masked = [
        {**m, "content": hide.sub(lambda x: f"{open_}{texts.index(x.group())}{close}", m["content"])}
        if isinstance(m.get("content"), str) else m
        for m in messages
    ]
    text = tokenizer.apply_chat_template(masked, add_generation_prompt=add_generation_prompt, tokenize=False)
    unhide = re.compile(re.escape(open_) + r"(\d+)" + re.escape(close))
    ids: list[int] = []
    pos, strip_next = 0, False
    for found in [*hide.finditer(text), None]:
        piece = text[pos : found.start() if found else len(text)]
        tok = specials.get(found.group()) if found else None
        # Added tokens with lstrip/rstrip swallow the whitespace beside them, as in `encode`.
        if strip_next:
            piece = piece.lstrip()
        if tok is not None and tok.lstrip:
            piece = piece.rstrip()
        piece = unhide.sub(lambda x: texts[int(x.group(1))], piece)
        if piece:
            ids += tokenizer.encode(piece, add_special_tokens=False, split_special_tokens=True)
        if found is None:
            return ids
        ids.append(tokenizer.convert_tokens_to_ids(found.group()))
        pos, strip_next = found.end(), tok is not None and tok.rstrip


def process_logits(logits: torch.Tensor, seen: torch.Tensor, opts: SamplingOptions) -> torch.Tensor:
    """Apply repetition penalty, temperature, top-k, top-p to one row of logits (V,). Returns logits."""
    logits = logits.float().clone()
    if opts.repetition_penalty != 1.0 and seen.numel():
        prev = logits[seen]
        # CTRL (Keskar et al. 2019) as in HF: shrink positive logits, push negative ones further down.
        logits[seen] = torch.where(prev > 0, prev / opts.repetition_penalty, prev * opts.repetition_penalty)
    if opts.temperature == 0:
        return logits
    logits = logits / opts.temperature
    if opts.top_k > 0 and opts.top_k < logits.numel():
        kth = torch.topk(logits, opts.top_k).values[-1]
        logits[logits < kth] = float("-inf")
    if opts.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the mass before it already reaches top_p; the most likely one always stays.
        drop = (probs.cumsum(-1) - probs) >= opts.top_p
        logits[order[drop]] = float("-inf")
    return logits


def pick_token(logits: torch.Tensor, opts: SamplingOptions, generator: torch.Generator | None) -> int:
    if opts.temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def new_token_budget(model, n_prompt: int, max_new_tokens: int, max_length: int | None = None) -> int:
    """How many tokens may follow an `n_prompt`-token prompt: `max_new_tokens`, capped so prompt + reply
    fit in `max_length` (default: the model's max_position_embeddings). A prompt that leaves no room
    is a UserError naming both numbers."""
    limit = max_length if max_length is not None else max_positions(model)
    if limit is None:
        return max_new_tokens
    if n_prompt >= limit:
        raise UserError(
            f"prompt is {n_prompt} tokens but the model's context is {limit} positions "
            f"(max_position_embeddings): no room to generate; shorten the prompt below {limit} tokens"
        )
    return min(max_new_tokens, limit - n_prompt)


def check_prompt_ids(model, prompt_ids: list[int]) -> None:
    """A UserError when a prompt id has no row in the model's input embeddings: a `--tokenizer` (or a
    tokenizer found beside the model) that is not the model's. The lookup failed with `IndexError: index
    out of range in self` on CPU and a device-side assert that poisons the process on CUDA."""
    try:
        weight = getattr(model.get_input_embeddings(), "weight", None)
    except (AttributeError, NotImplementedError):  # a model without the HF accessor: nothing to check
        return
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        return
    rows = weight.shape[0]
    bad = next((t for t in prompt_ids if not 0 <= t < rows), None)
    if bad is not None:
        raise UserError(
            f"prompt token id {bad} is outside the model's vocabulary ({rows} embeddings): the tokenizer "
            "is not the model's (pass the model's own with --tokenizer DIR)"
        )


def sampling_generator(opts: SamplingOptions) -> torch.Generator | None:
    """The sampling RNG `opts.seed` asks for (None: torch's global one, nondeterministic)."""
    return None if opts.seed is None else torch.Generator(device="cpu").manual_seed(opts.seed)


@torch.no_grad()
def generate_ids(
    model,
    prompt_ids: list[int],
    opts: SamplingOptions,
    stop_ids: list[int] = (),
    use_cache: bool = True,
    max_length: int | None = None,
    generator: torch.Generator | None = None,
    vocab: int | None = None,
) -> Generator[int, None, StopReason]:
    """Yield new token ids one at a time until a stop id (not yielded), `max_new_tokens`, or prompt +
    reply reaching `max_length` (default: the model's max positions). Returns the StopReason
    (the generator's return value). `generator`: the sampling RNG to go on with (a chat's, across turns);
    default: a fresh one seeded with `opts.seed`. `vocab`: ids from this one on (embedding rows past the
    tokenizer's ids, which have no text) are never picked."""
    budget = new_token_budget(model, len(prompt_ids), opts.max_new_tokens, max_length)
    check_prompt_ids(model, prompt_ids)
    device = next(model.parameters()).device
    if generator is None:
        generator = sampling_generator(opts)
    seq = torch.tensor([prompt_ids], dtype=torch.long, device=device)  # (1, T)
    # NOTE: a Steel model with `document_mask` (every SFT model) computes each EOS-ended document of a
    # sequence alone, positions restarting at 0, but only on a fresh forward: a cached step attended to
    # the whole cache at global positions. The last document alone decides the next token, so it alone is
    # fed, and a new document (after an EOS) starts with an empty cache.
    doc_eos = _document_eos(model)
    start = max((i + 1 for i, t in enumerate(prompt_ids[:-1]) if t in doc_eos), default=0)
    last = prompt_ids[-1]
    past = None
    step_input = seq[:, start:]
    # Only the last position's logits are read: skip the LM head elsewhere when the model allows it.
    keep = {"logits_to_keep": 1} if accepts(model, "logits_to_keep") else {}
    # transformers 5.25 renamed the cache argument `past_key_values` to `cache`; a model's forward (an older
    # export's remote code included) says which it takes.
    cache_kw = "cache" if accepts(model, "cache") else "past_key_values"
    for _ in range(budget):
        if use_cache:
            out = model(input_ids=step_input, use_cache=True, **{cache_kw: past}, **keep)
            past = output_cache(out)
        else:
            out = model(input_ids=seq[:, start:], use_cache=False, **keep)
        raw = out.logits[0, -1]  # (V,)
        if bool((torch.isnan(raw) | torch.isposinf(raw)).any()):  # one read-back
            # Sampling died in torch.multinomial with a traceback, greedy decoding emitted token 0 over and over.
            dtype = str(getattr(model, "dtype", "?")).removeprefix("torch.")
            raise UserError(
                f"the model's logits are not finite (NaN or inf) after {seq.shape[1]} tokens with the model in "
                f"{dtype}: its activations overflow or its weights are not finite (float16 overflows for many "
                "models trained in bfloat16: try --dtype bfloat16 or float32)"
            )
        if vocab is not None and vocab < raw.shape[0]:
            # NOTE: rows past the tokenizer (Qwen's padding; a model configured with a larger vocab_size than
            # its tokenizer, e.g. tiny-cpu.yaml's 151,936 with a user's own 6,000-id BPE) have no text: a
            # sampled one was dropped by decode without a word (an empty reply, exit 0).
            raw = raw.clone()
            raw[vocab:] = float("-inf")
        logits = process_logits(raw, seq[0], opts)  # (V,)
        tok = pick_token(logits.cpu(), opts, generator)
        if tok in stop_ids:
            return "stop_token"
        yield tok
        nxt = torch.tensor([[tok]], dtype=torch.long, device=device)
        if last in doc_eos:  # `tok` begins a document
            start, past = seq.shape[1], None
        seq = torch.cat([seq, nxt], dim=1)
        step_input, last = nxt, tok
    return "max_new_tokens" if budget == opts.max_new_tokens else "max_positions"


def _document_eos(model) -> set[int]:
    """The EOS ids that end a document for a model with Steel's `document_mask`; empty for other models."""
    cfg = getattr(model, "config", None)
    if not getattr(cfg, "document_mask", False):
        return set()
    eos = cfg.eos_token_id
    return set(eos) if isinstance(eos, (list, tuple)) else {eos}


class TextStream:
    """Turns a token stream into text pieces, holding back bytes that are not yet a full character."""

    def __init__(self, tokenizer, write: Callable[[str], object] | None = None):
        self.tokenizer = tokenizer
        self.write = write or (lambda s: (sys.stdout.write(s), sys.stdout.flush()))
        self.tokens: list[int] = []
        self.printed = 0

    def put(self, token: int) -> None:
        self.tokens.append(token)
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        # NOTE: a byte-level BPE token can end mid-character; decode shows U+FFFD until the rest arrives.
        if text.endswith("\ufffd"):
            return
        if len(text) > self.printed:
            self.write(text[self.printed :])
            self.printed = len(text)

    def end(self) -> str:
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if len(text) > self.printed:
            self.write(text[self.printed :])
            self.printed = len(text)
        return text


@dataclass
class Reply:
    text: str
    tokens: list[int] = field(default_factory=list)
    stop_reason: StopReason = "stop_token"


def generate_reply(
    model,
    tokenizer,
    prompt_ids: list[int],
    opts: SamplingOptions,
    stream: TextStream | None = None,
    max_length: int | None = None,
    generator: torch.Generator | None = None,
) -> Reply:
    """Generate, streaming pieces to `stream` when given; returns the new text, tokens and stop reason."""
    stream = stream or TextStream(tokenizer, write=lambda s: None)
    it = generate_ids(model, prompt_ids, opts, model_stop_ids(model, tokenizer), max_length=max_length,
                      generator=generator, vocab=token_count(tokenizer))
    while True:
        try:
            tok = next(it)
        except StopIteration as stop:
            reason = stop.value
            break
        stream.put(tok)
    return Reply(stream.end(), list(stream.tokens), reason)


def generate_text(
    model, tokenizer, prompt_ids: list[int], opts: SamplingOptions, stream: TextStream | None = None
) -> str:
    """Generate, streaming pieces to `stream` when given; returns the whole new text."""
    return generate_reply(model, tokenizer, prompt_ids, opts, stream).text
