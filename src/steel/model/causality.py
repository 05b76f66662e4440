"""Causality check: does the output at position <= t change when tokens after t change?

For each probed t, the tokens after t are changed in two ways and the logits at positions 0..t are
compared with the unperturbed run:
  - `random`: every later token replaced by another random token;
  - `constant`: every later token replaced by one and the same token.
A causal LM gives exactly (or within float noise) the same logits; soft MoE v2/v3 do not, because every
slot is a mixture of the whole sequence.

NOTE: the `constant` probe is what keeps the check honest on long sequences. A slot of soft MoE v2/v3
is a softmax-weighted average over the T tokens; swapping T - t random tokens for other random tokens
moves that average only by ~1/sqrt(T) (both are averages of i.i.d. embeddings), so at seq_len 256 a
random-init v3 looked causal (measured leak 2.7e-7 < 1e-6 tolerance, 2.6e-6 at seq_len 32). One token
repeated shifts the average by O(1) whatever T is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# NOTE: a causal model's earlier rows are computed by the same kernels on the same values (GEMM and
# attention rows do not depend on other rows), so its leak is exactly 0.0 in practice (measured: every
# causal variant, fp32 CPU). fp32 rounding noise would be ~1e-7 of the logit scale; 1e-6 leaves room
# for it while still catching soft MoE v3 at random init, whose small MoE branch leaks only ~4e-6 of
# the logit scale (a trained one leaks far more, README, "The model").
DEFAULT_RTOL = 1e-6


@dataclass
class CausalityReport:
    max_leak: float  # largest |logits change| at positions <= t over all probed t
    worst_t: int  # the t where it happened
    logit_scale: float  # max |logits| of the unperturbed run (to read max_leak relative to it)
    per_t: dict[int, float]  # t -> largest change at positions <= t (over both probes)
    per_probe: dict[str, float]  # probe name -> its largest change over all t
    tolerance: float  # absolute threshold used for `leaks`

    @property
    def leaks(self) -> bool:
        return self.max_leak > self.tolerance


@torch.no_grad()
def check_causal(
    model: torch.nn.Module, vocab_size: int, seq_len: int = 32, batch: int = 2, positions: list[int] | None = None,
    seed: int = 0, rtol: float = DEFAULT_RTOL,
) -> CausalityReport:
    """Perturb tokens after each t in `positions` (default: every t < seq_len - 1); eval mode, no cache.

    Two forward passes per probed t (the `random` and `constant` probes of the module docstring).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch, seq_len), generator=g).to(device)  # (B, T)
    base = model(input_ids=ids, use_cache=False).logits.float()  # (B, T, V)
    per_t: dict[int, float] = {}
    per_probe = {"random": 0.0, "constant": 0.0}
    for t in positions if positions is not None else range(seq_len - 1):
        n_after = seq_len - t - 1
        # random: shift every later token by a nonzero offset so each one really changes.
        offset = torch.randint(1, vocab_size, (batch, n_after), generator=g).to(device)
        # constant: one token per row, repeated over the whole suffix.
        token = torch.randint(0, vocab_size, (batch, 1), generator=g).to(device)
        for name, suffix in (("random", (ids[:, t + 1 :] + offset) % vocab_size),
                             ("constant", token.expand(batch, n_after))):
            other = ids.clone()
            other[:, t + 1 :] = suffix
            logits = model(input_ids=other, use_cache=False).logits.float()
            leak = (logits[:, : t + 1] - base[:, : t + 1]).abs().max().item()
            per_t[t] = max(per_t.get(t, 0.0), leak)
            per_probe[name] = max(per_probe[name], leak)
    # Plain nn.Module.train: restoring the mode is not "starting to train" (no leaking-variant warning).
    torch.nn.Module.train(model, was_training)
    worst_t = max(per_t, key=per_t.get)
    scale = base.abs().max().item()
    return CausalityReport(per_t[worst_t], worst_t, scale, per_t, per_probe, rtol * max(scale, 1.0))
