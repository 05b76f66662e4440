"""`steel eval ppl`: perplexity of a model over prepared chunks (a `steel data prepare` output).

Each chunk is cut into consecutive windows of `seq_len` tokens (the last, shorter window included
when it has at least two tokens); inside a window every token but the first is predicted from the
ones before it, as in training (documents are joined by EOS, so context can cross a document end).
Reported per source and overall: mean negative log-likelihood (nats/token) and its exponential.
`max_tokens` scores exactly that many tokens (predicted tokens, as `tokens` reports), shared among the
sources in proportion to their size, so the overall figure is not the first source's alone.
`seq_len` may not exceed the model's `max_position_embeddings` (an error, not extrapolated garbage);
the CLI's default is 1024 or the model's limit when that is smaller.
A model whose FFN mixes positions (Steel soft-MoE v2/v3) reads the later tokens of each window, so its
figure is optimistic (teacher-forced, not what it delivers on a prefix): a warning says so and the
result carries `"causal": false` (true otherwise).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from steel.cli import UserError
from steel.config import ConfigError
from steel.data.chunks import ChunkFormatError, check_headers, read_chunk, read_manifest
from steel.infer.load import max_positions, mixes_positions


@dataclass
class PplOptions:
    """The flags of `steel eval ppl`, or the fields of a `--config` YAML (configs/eval/)."""

    data: Path  # DATA_DIR with manifest.json and chunk files (a `steel data prepare` output)
    seq_len: int | None = None  # tokens per window; None: 1024, or the model's max positions if smaller
    max_tokens: int | None = None  # stop after scoring this many tokens; None: all
    batch_size: int = 4

    def validate(self) -> None:
        if self.seq_len is not None and self.seq_len < 2:
            raise ConfigError(f"seq_len: must be >= 2, got {self.seq_len}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens: must be >= 1, got {self.max_tokens}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {self.batch_size}")


def open_manifest(data_dir: Path) -> dict:
    """read_manifest with its format errors reported as user errors (one line, exit 2)."""
    try:
        return read_manifest(data_dir)
    except ChunkFormatError as e:
        raise UserError(str(e)) from None


def check_chunks(data_dir: Path, manifest: dict, chunks: list[dict]) -> None:
    """Each chunk's header against the manifest, before any scoring: the manifest's token count decides the
    windows, so a chunk holding fewer tokens crashed mid-run (after the chunks before it were scored) and
    one holding more was scored in part without a word; a missing chunk was found only when its turn came."""
    try:
        check_headers(data_dir, manifest.get("tokenizer", {}),
                      [(Path(data_dir) / c["file"], int(c["tokens"])) for c in chunks])
    except ChunkFormatError as e:
        raise UserError(str(e)) from None


def windows(n_tokens: int, seq_len: int) -> list[tuple[int, int]]:
    """[start, end) spans covering [0, n_tokens) in steps of seq_len; a last span shorter than 2 is dropped."""
    spans = [(s, min(s + seq_len, n_tokens)) for s in range(0, n_tokens, seq_len)]
    return [(s, e) for s, e in spans if e - s >= 2]


@torch.no_grad()
def window_nll(model, batch: torch.Tensor) -> tuple[float, int]:
    """Summed NLL (nats) of tokens 1..T-1 given their prefixes, and how many were scored. batch: (B, T)."""
    logits = model(input_ids=batch, use_cache=False).logits  # (B, T, V)
    # NOTE: the cross-entropy runs in float32 row by row so bf16 logits do not lose precision and the
    # float32 copy stays (T, V) at a time instead of (B, T, V).
    total = 0.0
    for b in range(batch.shape[0]):
        total += float(F.cross_entropy(logits[b, :-1].float(), batch[b, 1:], reduction="sum"))
    return total, batch.shape[0] * (batch.shape[1] - 1)


Span = tuple[int, int, int]  # (chunk index, start, end)


def plan(chunks: list[dict], seq_len: int, max_tokens: int | None) -> tuple[list[Span], dict[str, int]]:
    """The windows to score, as (chunk index, start, end), and each source's available scored tokens.

    Without `max_tokens`: every window of every chunk. With it, exactly min(max_tokens, available) tokens
    are scored, shared among the sources in proportion to what each has (largest remainder, ties to the
    earlier source), so "overall" estimates the whole data's figure instead of the first source's; each
    source takes its windows from its start and its last window is cut short to end on its share.
    """
    spans: dict[str, list[Span]] = {}
    for i, c in enumerate(chunks):
        src = c.get("source", "?")
        spans.setdefault(src, []).extend((i, s, e) for s, e in windows(int(c["tokens"]), seq_len))
    available = {src: sum(e - s - 1 for _, s, e in sp) for src, sp in spans.items()}
    total = sum(available.values())
    if max_tokens is None or max_tokens >= total:
        quota = dict(available)
    else:
        quota = {src: max_tokens * a // total for src, a in available.items()}
        # Largest remainders first; sorted() is stable, so ties keep the manifest's order.
        order = sorted(available, key=lambda src: -((max_tokens * available[src]) % total))
        for src in order[: max_tokens - sum(quota.values())]:
            quota[src] += 1
    out: list[Span] = []
    for src, sp in spans.items():
        left = quota[src]
        for i, s, e in sp:
            if left <= 0:
                break
            e = min(e, s + left + 1)  # a window of L tokens scores L - 1
            out.append((i, s, e))
            left -= e - s - 1
    out.sort()
    return out, available


def perplexity(
    model, data_dir: Path, seq_len: int, batch_size: int, max_tokens: int | None = None, advance=None
) -> dict:
    """Mean NLL and perplexity per source and overall. `max_tokens`: score exactly that many tokens
    (fewer if the data has fewer), shared among the sources in proportion to their size (see `plan`)."""
    if seq_len < 2:
        raise UserError("--seq-len: must be >= 2")
    limit = max_positions(model)
    if limit is not None and seq_len > limit:
        # NOTE: RoPE would happily run past it; the numbers past the trained length would be garbage.
        raise UserError(
            f"--seq-len {seq_len}: longer than the model's max_position_embeddings {limit} "
            f"(use --seq-len {limit} or less)"
        )
    manifest = open_manifest(data_dir)
    vocab = int(manifest.get("tokenizer", {}).get("vocab_size", 0))
    model_vocab = int(getattr(model.config, "vocab_size", 0) or 0)
    if vocab and model_vocab and vocab > model_vocab:
        raise UserError(
            f"{data_dir}/manifest.json: tokenizer vocab_size {vocab} exceeds the model's {model_vocab}"
        )
    causal = not mixes_positions(model)
    if not causal:
        from steel.model.modeling_steel import SteelCausalityWarning

        # NOTE: README "The model": a trained soft_moe_v3 scored 2.017 nats teacher-forced, 2.125 prefix-only.
        warnings.warn(
            f"steel eval ppl: ffn_type={model.config.ffn_type!r} mixes positions, so each token's score reads "
            "the tokens after it in its window: this perplexity is optimistic, not what the model delivers "
            'on a prefix (the result says "causal": false; `steel model check-causal` measures the leak)',
            SteelCausalityWarning,
            stacklevel=2,
        )
    device = next(model.parameters()).device
    chunks = manifest["chunks"]
    todo, available = plan(chunks, seq_len, max_tokens)
    check_chunks(data_dir, manifest, [chunks[i] for i in sorted({i for i, _, _ in todo})])
    per_source: dict[str, list[float]] = {}  # source -> [nll, tokens]
    # Consecutive windows of one chunk and one length batch together; a shorter one runs alone.
    groups: list[list[Span]] = []
    for i, s, e in todo:
        g = groups[-1] if groups else None
        if g and len(g) < batch_size and g[0][0] == i and g[0][2] - g[0][1] == e - s:
            g.append((i, s, e))
        else:
            groups.append([(i, s, e)])
    if advance is None:
        from steel.runlog import progress_bar

        bar = progress_bar("perplexity", total=sum(e - s - 1 for _, s, e in todo), unit="tokens")
    else:
        from contextlib import nullcontext

        bar = nullcontext(advance)
    loaded: tuple[int, object] | None = None
    with bar as step:
        for g in groups:
            i = g[0][0]
            c = chunks[i]
            if loaded is None or loaded[0] != i:
                try:
                    loaded = (i, read_chunk(Path(data_dir) / c["file"])[1])
                except (ChunkFormatError, OSError) as e:
                    raise UserError(f"{Path(data_dir) / c['file']}: {e}") from None
            tokens = loaded[1]
            batch = torch.stack([torch.from_numpy(tokens[s:e].astype("int64")) for _, s, e in g]).to(
                device
            )  # (B, T)
            nll, n = window_nll(model, batch)
            if not math.isfinite(nll):
                # NaN/inf went into the JSON as `NaN` (not JSON: jq and JSON.parse refuse it) with every source
                # sharing the window's figure poisoned; it comes from the model, e.g. float16 overflowing.
                dtype = str(getattr(model, "dtype", "?")).removeprefix("torch.")
                raise UserError(
                    f"{Path(data_dir) / c['file']}: tokens {g[0][1]}..{g[-1][2]} give a non-finite loss ({nll}) with "
                    f"the model in {dtype}: its logits overflow or its weights are not finite (float16 overflows "
                    "for many models trained in bfloat16: try --dtype bfloat16 or float32)"
                )
            acc = per_source.setdefault(c.get("source", "?"), [0.0, 0])
            acc[0] += nll
            acc[1] += n
            step(n)
    scored = sum(v[1] for v in per_source.values())
    if not scored:
        raise UserError(f"{data_dir}: no tokens scored (chunks shorter than 2 tokens?)")
    sources = {
        k: {"nll": v[0] / v[1], "ppl": math.exp(v[0] / v[1]), "tokens": v[1], "available": available[k]}
        for k, v in per_source.items()
        if v[1]
    }
    nll = sum(v[0] for v in per_source.values()) / scored
    return {
        "data": str(data_dir),
        "seq_len": seq_len,
        "tokens": scored,
        "available_tokens": sum(available.values()),
        "nll": nll,
        "ppl": math.exp(nll),
        "causal": causal,  # False: the model reads later tokens of a window and the figure is optimistic
        "sources": sources,
        # Sources with data but no share of --max-tokens (too small for one token of it), named so the
        # overall figure is not mistaken for theirs.
        "unscored_sources": [k for k, a in available.items() if a and k not in sources],
    }
