"""The one interface every drafter answers: propose, then take feedback.

A drafter gets the committed token ids (prompt + generated so far), a draft length, the sampling
shaping and the run's random generator, and returns a `Proposal`. After verification it hears how
many of its tokens were accepted (for adaptive lengths, pools, caches).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from specscope.core.sampling import Shaping


@dataclass
class Proposal:
    tokens: list[int] = field(default_factory=list)
    # parents[i]: index of node i's parent in tokens, -1 for the context. A chain is [-1, 0, 1, ...].
    parents: list[int] = field(default_factory=list)
    # Drafter probability of each token, for display (None where the drafter has none).
    q_token: list[float | None] = field(default_factory=list)
    # [len(tokens), V] full-vocabulary distributions the tokens were sampled from, for exact
    # rejection sampling; None means one-hot (deterministic drafters, and greedy runs).
    q: torch.Tensor | None = None
    # Drafters that refine a whole block in parallel (jacobi): the block as first guessed, then
    # after each pass; the engine copies it into the Drafted event. Empty for the others.
    refinement: list[list[int]] = field(default_factory=list)


class Drafter(Protocol):
    name: str

    def read_params(self) -> int:
        """Weights read per drafted token (0 for model-free drafters); r in MBSU uses it."""
        ...

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        ...

    def feedback(self, ids: list[int], proposal: Proposal, n_accepted: int) -> None:
        """`ids`: the committed ids after the step; n_accepted: accepted proposal tokens."""
        ...


class NoDrafter:
    """Plain autoregressive decoding through the same loop: proposes nothing."""

    name = "ar"

    def read_params(self) -> int:
        return 0

    def propose(self, ids, k, shaping, generator) -> Proposal:
        return Proposal()

    def feedback(self, ids, proposal, n_accepted) -> None:
        pass
