"""Logits -> probabilities, shaped the same way for the target (p) and the drafter (q).

Notation used across the core: `p` is the target's distribution, `q` the drafter's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Shaping:
    """How logits become a distribution. temperature == 0 means greedy (argmax)."""

    temperature: float = 0.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


def probs_from_logits(logits: torch.Tensor, shaping: Shaping) -> torch.Tensor:
    """Softmax over the last dim after temperature, top-k and top-p. Works on [..., V].

    Greedy shaping gives the one-hot of the argmax, so greedy is the sampling rule's limit.
    """
    logits = logits.float()
    if shaping.greedy:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    logits = logits / shaping.temperature
    if shaping.top_k and shaping.top_k < logits.shape[-1]:
        kth = torch.topk(logits, shaping.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if shaping.top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        # Drop a token when the mass before it already reaches top_p (the top token always stays).
        drop_sorted = (sorted_p.cumsum(-1) - sorted_p) >= shaping.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def residual(p: torch.Tensor, q: torch.Tensor | None = None, x: int | None = None) -> torch.Tensor:
    """normalize(max(0, p - q)): where to resample after a rejection; p itself if that is empty.

    q=None stands for the one-hot row of a deterministic proposal x: the residual is then p with
    p[x] set to 0, renormalised, and no [V] one-hot row is ever built. No host sync.
    """
    if q is None:
        r = p.clone()
        r[x] = 0.0
    else:
        r = (p - q).clamp_min(0.0)
    total = r.sum(-1, keepdim=True)
    return torch.where(total > 0, r / total.clamp_min(torch.finfo(r.dtype).tiny), p)


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    return int(torch.multinomial(probs, 1, generator=generator).item())
