"""AdamW for low-precision (bf16) model parameters, with fp32 master weights and fp32 AdamW state.

The model holds bf16 parameters, so forward and backward read them directly (no autocast casts, half
the gradient memory and traffic of fp32 parameters); the update is done in fp32 on master copies and
rounded back into the bf16 parameters. Memory per parameter: 2 (bf16 weight) + 2 (bf16 gradient) + 4
(fp32 master) + 8 (fp32 exp_avg, exp_avg_sq) = 16 bytes, the same as fp32 weights + fp32 gradients +
AdamW state, and less than fp32 weights under autocast, which also caches a bf16 copy of every weight
between forward and backward (18 bytes).

NOTE (memory): the fp32 gradients the update needs are made one bucket at a time (`bucket_bytes` of
fp32), each bucket updated by its own `torch.optim.AdamW` and its bf16 gradients freed at once. Making
all fp32 gradients first, as a single optimizer over all master weights would need, peaks at
2 + 4 + 4 + 8 = 18 bytes per parameter (by count: not yet measured on a GPU); with
buckets the peak is 16 bytes per parameter plus one bucket.

NOTE (numerics): gradients are accumulated over micro-batches in bf16 (8 bits of mantissa), unlike
fp32 parameters under autocast; the global norm used for clipping is computed with fp32 accumulation
(`torch._foreach_norm(..., dtype=float32)`). Given the same gradients, every master weight and AdamW
state is bit-identical to `torch.optim.AdamW` on fp32 parameters with `clip_grad_norm_` (tested).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class MasterWeightAdamW:
    """AdamW over fp32 master copies of `params` (bf16 tensors); `param_groups` as torch optimizers have.

    params: an iterable of tensors or of param-group dicts (`params`, optional `lr`, `weight_decay`).
    `step(max_grad_norm)` clips by the global gradient norm when `max_grad_norm` is given and returns
    that norm (fp32 scalar tensor, before clipping), then updates and zeroes the gradients.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, fused: bool | None = None,
                 bucket_bytes: int = 256 * 2**20):
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        self.param_groups: list[dict] = []
        self.params: list[torch.Tensor] = []  # the model's (bf16) parameters, in group order
        self.master: list[torch.Tensor] = []  # their fp32 copies, same order
        self._group_of: list[int] = []
        for gi, g in enumerate(groups):
            ps = [p for p in g["params"] if p.requires_grad]
            self.param_groups.append({**self.defaults, **{k: v for k, v in g.items() if k != "params"}, "params": ps})
            for p in ps:
                self.params.append(p)
                self.master.append(p.detach().float().clone())
                self._group_of.append(gi)
        # Buckets of consecutive parameters, each with its own AdamW whose groups mirror param_groups.
        self._buckets: list[tuple[list[int], torch.optim.AdamW]] = []
        start = 0
        while start < len(self.params):
            end, size = start, 0
            while end < len(self.params) and (end == start or size + 4 * self.params[end].numel() <= bucket_bytes):
                size += 4 * self.params[end].numel()
                end += 1
            idx = list(range(start, end))
            sub = [{"params": [self.master[i] for i in idx if self._group_of[i] == gi], "_group": gi}
                   for gi in range(len(self.param_groups))]
            sub = [g for g in sub if g["params"]]
            self._buckets.append((idx, torch.optim.AdamW(sub, lr=lr, betas=tuple(betas), eps=eps,
                                                         weight_decay=weight_decay, fused=fused)))
            start = end

    @torch.no_grad()
    def grad_norm(self) -> torch.Tensor:
        """Global L2 norm of the model's gradients, accumulated in fp32 (as clip_grad_norm_ on fp32 grads)."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return torch.zeros((), device=self.master[0].device if self.master else None)
        norms = torch._foreach_norm(grads, 2, dtype=torch.float32)
        return torch.linalg.vector_norm(torch.stack(norms), 2)

    @torch.no_grad()
    def step(self, max_grad_norm: float | None = None) -> torch.Tensor | None:
        norm = None
        scale = None
        if max_grad_norm is not None:
            norm = self.grad_norm()
            # clip_grad_norm_'s rule: scale by min(1, max / (norm + 1e-6)), also when the norm is not finite
            scale = (max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
        for idx, opt in self._buckets:
            for g in opt.param_groups:  # the schedule writes lr / weight_decay into self.param_groups
                src = self.param_groups[g["_group"]]
                g["lr"], g["weight_decay"], g["betas"], g["eps"] = (
                    src["lr"], src["weight_decay"], src["betas"], src["eps"])
            live = []
            for i in idx:
                p, m = self.params[i], self.master[i]
                if p.grad is None:
                    continue
                m.grad = p.grad.float()
                p.grad = None  # the bf16 gradient is freed as soon as its fp32 copy exists
                live.append(i)
            if not live:
                continue
            if scale is not None:
                torch._foreach_mul_([self.master[i].grad for i in live], scale)
            opt.step()
            torch._foreach_copy_([self.params[i] for i in live], [self.master[i] for i in live])  # fp32 -> bf16
            for i in live:
                self.master[i].grad = None
        return norm

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        """{"master": [fp32 tensors], "buckets": [AdamW state_dicts], "param_groups": [hyper-parameters]}."""
        return {
            "master": [m.detach() for m in self.master],
            "buckets": [opt.state_dict() for _, opt in self._buckets],
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        if len(state["master"]) != len(self.master) or len(state["buckets"]) != len(self._buckets):
            raise ValueError(
                f"MasterWeightAdamW state holds {len(state['master'])} parameters in {len(state['buckets'])} "
                f"buckets; this optimizer has {len(self.master)} in {len(self._buckets)}")
        for m, saved, p in zip(self.master, state["master"], self.params):
            if saved.shape != m.shape:
                raise ValueError(f"master weight of shape {tuple(saved.shape)} for a parameter of {tuple(m.shape)}")
            m.copy_(saved)
            p.copy_(m)
        for (_, opt), saved in zip(self._buckets, state["buckets"]):
            opt.load_state_dict(saved)
        for g, saved in zip(self.param_groups, state["param_groups"]):
            g.update(saved)
