"""The one interface every drafter answers, and the one optional capability.

What the engine (core/engine.py) asks of every drafter (`Drafter`), at every step:
    drafter.configure(settings)                  # vocabulary size, confidence cut-off, window
    for done, total in drafter.prefill(ids[:-1]): ...   # a long unread context, chunk by chunk
    proposal = drafter.propose(ids, k, shaping, generator)
    ... one target pass, verification ...
    drafter.feedback(ids, proposal, n_accepted)  # ids: committed ids after the step
    drafter.observe_target(start, hidden)        # only when drafter.needs_target_hidden

and `reset()` between runs that must not share state (bench runs, a new session);
`read_params()` (the cost model's r) and `kv_bytes()` (memory shown) are read for display and
the draft-length choice. Every capability the loop uses is part of this interface, so the loop
never probes a drafter with hasattr. `DrafterBase` gives every optional part a no-op default.

Drafting by context (`DraftsByContext`) is the one optional capability: a drafter that can give
its q after any drafted path, not only after the chain it is drafting, so that tree growth
(drafters/tree.py, TreeDrafter) can branch wherever it likes. The draft model (ModelDrafter) and
FastMTP's head (MTPDrafter) have it.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from specscope.core.errors import SpecScopeError
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
    # a drafter in its own worker (core/workers.py): what drafting ahead gave this step
    overlap: object | None = None  # events.Overlap


@dataclass(frozen=True)
class DraftSettings:
    """What the engine tells a drafter before each step (from the run's Controls)."""

    vocab_top_k: int | None = None  # drafter vocabulary size (trimmed heads); None: its default
    # Stop drafting when the drafter's confidence in the whole draft (the product of its top
    # probabilities so far) falls below this (0: never). Decided before a token is sampled, so
    # the proposal's q stays the law the token was drawn from.
    min_confidence: float = 0.0
    refine_steps: int | None = None  # block-refining drafters (jacobi): passes; None: their auto
    draft_window: int = 0  # a draft model's KV cache: sinks + this many recent tokens; 0: all
    # draft the next step while the target verifies this one (a drafter in its own worker,
    # core/workers.py; the others refuse it)
    overlap: bool = False
    # the length is chosen every step from measured costs (--draft-len auto); with overlap the
    # draft model's chain becomes several sequences where its first tokens are unsure
    auto_len: bool = False


class Drafter(Protocol):
    name: str
    accepts_vocab_top_k: bool  # drafts over a VocabTrim ranking whose size can be chosen
    needs_target_hidden: bool  # wants the target's hidden states (observe_target)

    def read_params(self) -> int:
        """Weights read per drafted token (0 for model-free drafters); r in MBSU uses it."""
        ...

    def configure(self, settings: DraftSettings) -> None:
        """Settings for the next proposals; refuses values it cannot honour (SpecScopeError)."""
        ...

    def reset(self) -> None:
        """Forget every per-run state: caches, phrase pools, adaptive thresholds."""
        ...

    def prefill(self, ids: list[int]) -> Iterator[tuple[int, int]]:
        """Before a proposal: read committed ids its cache lacks, yielding (done, total) between
        chunked passes; only when that takes more than one pass (core/lm.py read_in_chunks).
        Drafters without a cache of the context yield nothing."""
        ...

    def kv_bytes(self) -> int:
        """Bytes held by the drafter's own KV cache now (0: none, or it shares the target's)."""
        ...

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        ...

    def feedback(self, ids: list[int], proposal: Proposal, n_accepted: int) -> None:
        """`ids`: the committed ids after the step; n_accepted: accepted proposal tokens."""
        ...

    def observe_target(self, start: int, hidden: torch.Tensor) -> None:
        """The target's final hidden states [n, d] at committed positions start .. start + n - 1
        (after the prefill, and after each verification: the root and the accepted nodes)."""
        ...


@runtime_checkable
class DraftsByContext(Drafter, Protocol):
    """A drafter that is also a chain source for tree growth: its q after the committed ids plus
    any drafted path, asked in any order between begin() and end()."""

    def begin(self, ids: list[int]) -> bool:
        """Prepare to draft after the committed `ids`; False when there is nothing to draft
        from (then no dist() follows, and no end())."""
        ...

    def dist(self, ctx: list[int], shaping: Shaping) -> torch.Tensor:
        """q over the drafter's rows after `ctx` = the ids given to begin() + a drafted path."""
        ...

    def end(self) -> None:
        """Drop whatever drafting left behind (drafted cache entries); committed state stays."""
        ...

    def token_id(self, j: int) -> int:
        """The vocabulary id of row j of the current rows."""
        ...

    def full_q(self, probs: torch.Tensor) -> torch.Tensor:
        """A q over the current rows as a full-vocabulary row (zero outside the rows)."""
        ...


def refuse_overlap(settings: DraftSettings, name: str) -> None:
    if settings.overlap:
        raise SpecScopeError(f"--overlap needs a model drafter (draft, tree, pool, jacobi) in its own worker; "
                             f"'{name}' drafts in the target's process")


class DrafterBase:
    """No-op defaults for the optional parts of the interface."""

    name = "?"
    accepts_vocab_top_k = False
    needs_target_hidden = False
    settings = DraftSettings()

    def read_params(self) -> int:
        return 0

    def configure(self, settings: DraftSettings) -> None:
        refuse_overlap(settings, self.name)
        self.settings = settings

    def reset(self) -> None:
        pass

    def prefill(self, ids: list[int]) -> Iterator[tuple[int, int]]:
        return iter(())

    def kv_bytes(self) -> int:
        return 0

    def feedback(self, ids: list[int], proposal: Proposal, n_accepted: int) -> None:
        pass

    def observe_target(self, start: int, hidden: torch.Tensor) -> None:
        pass


class NoDrafter(DrafterBase):
    """Plain autoregressive decoding through the same loop: proposes nothing."""

    name = "ar"

    def propose(self, ids, k, shaping, generator) -> Proposal:
        return Proposal()
