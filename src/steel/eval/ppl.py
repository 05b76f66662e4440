"""`steel eval ppl`: perplexity of a model over prepared chunks (a `steel data prepare` output).

Each chunk is cut into consecutive windows of `seq_len` tokens (the last, shorter window included
when it has at least two tokens); inside a window every token but the first is predicted from the
ones before it, as in training (documents are joined by EOS, so context can cross a document end).
Reported per source and overall: mean negative log-likelihood (nats/token) and its exponential.
`seq_len` may not exceed the model's `max_position_embeddings` (an error, not extrapolated garbage);
the CLI's default is 1024 or the model's limit when that is smaller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from steel.cli import UserError
from steel.config import ConfigError
from steel.data.chunks import ChunkFormatError, read_chunk, read_manifest
from steel.infer.load import max_positions


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


def perplexity(
    model, data_dir: Path, seq_len: int, batch_size: int, max_tokens: int | None = None, advance=None
) -> dict:
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
    device = next(model.parameters()).device
    per_source: dict[str, list[float]] = {}  # source -> [nll, tokens]
    scored = 0
    if advance is None:
        from steel.runlog import progress_bar

        total = sum(int(c["tokens"]) for c in manifest["chunks"])
        bar = progress_bar("perplexity", total=min(total, max_tokens) if max_tokens else total, unit="tokens")
    else:
        from contextlib import nullcontext

        bar = nullcontext(advance)
    with bar as step:
        for c in manifest["chunks"]:
            if max_tokens is not None and scored >= max_tokens:
                break
            try:
                _header, tokens = read_chunk(Path(data_dir) / c["file"])
            except (ChunkFormatError, OSError) as e:
                raise UserError(f"{Path(data_dir) / c['file']}: {e}") from None
            spans = windows(len(tokens), seq_len)
            acc = per_source.setdefault(c.get("source", "?"), [0.0, 0])
            # Full windows batch together; the short last one (if any) runs alone.
            groups: list[list[tuple[int, int]]] = []
            for s, e in spans:
                if groups and len(groups[-1]) < batch_size and groups[-1][0][1] - groups[-1][0][0] == e - s:
                    groups[-1].append((s, e))
                else:
                    groups.append([(s, e)])
            for g in groups:
                if max_tokens is not None and scored >= max_tokens:
                    break
                batch = torch.stack([torch.from_numpy(tokens[s:e].astype("int64")) for s, e in g]).to(
                    device
                )  # (B, T)
                nll, n = window_nll(model, batch)
                acc[0] += nll
                acc[1] += n
                scored += n
                step(sum(e - s for s, e in g))
    sources = {
        k: {"nll": v[0] / v[1], "ppl": math.exp(v[0] / v[1]), "tokens": v[1]}
        for k, v in per_source.items()
        if v[1]
    }
    if not scored:
        raise UserError(f"{data_dir}: no tokens scored (chunks shorter than 2 tokens?)")
    nll = sum(v[0] for v in per_source.values()) / scored
    return {
        "data": str(data_dir),
        "seq_len": seq_len,
        "tokens": scored,
        "nll": nll,
        "ppl": math.exp(nll),
        "sources": sources,
    }
