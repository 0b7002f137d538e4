"""Verification of a drafted chain as pure functions (Leviathan et al. 2023; Chen et al. 2023).

Inputs for a chain of k draft tokens x_1..x_k:
  p: [k+1, V] target probabilities; row i is the target's distribution for the position of x_{i+1}
     (row k is the bonus position after the whole chain).
  q: [k, V] drafter probabilities the drafts were sampled from, or None for drafters that have no
     distribution (lookup), which count as one-hot q.
Returns how many drafts are accepted and the token the target chooses next (correction or bonus).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from specscope.core.sampling import residual, sample


@dataclass(frozen=True)
class Verdict:
    accepted: int  # length of the accepted prefix
    token: int  # the target-chosen token: correction at the first rejection, else bonus


def greedy_verify(draft: list[int], target_argmax: list[int]) -> Verdict:
    """Accept while the draft equals the target's argmax; the target's argmax follows."""
    n = 0
    while n < len(draft) and draft[n] == target_argmax[n]:
        n += 1
    return Verdict(n, target_argmax[n])


def speculative_sample(
    draft: list[int],
    p: torch.Tensor,
    q: torch.Tensor | None,
    generator: torch.Generator | None,
) -> Verdict:
    """Accept x_i with probability min(1, p(x_i)/q(x_i)); on rejection resample from
    normalize(max(0, p - q)); after k acceptances sample the bonus token from p."""
    for i, x in enumerate(draft):
        p_x = float(p[i, x])
        q_row = q[i] if q is not None else torch.nn.functional.one_hot(
            torch.tensor(x), p.shape[-1]).to(p.dtype)
        q_x = float(q_row[x])
        u = float(torch.rand((), generator=generator))
        if q_x > 0 and u < min(1.0, p_x / q_x):
            continue
        return Verdict(i, sample(residual(p[i], q_row), generator))
    return Verdict(len(draft), sample(p[len(draft)], generator))
