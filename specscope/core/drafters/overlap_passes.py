"""Drafting ahead for the model drafters whose proposal is not a plain chain of picks: the phrase
pool (`pool`) and Jacobi block refinement (`jacobi`). Their proposal depends on more than q (the
pool's phrases, a refined block), so what the worker prepares while the target verifies is the
draft model's *passes* for the main branch (all of the proposal accepted, the bonus guessed as
the drafter's most likely next token), not tokens:

  pool    q after each context of the main branch's chain (a Memo, as drafters/overlap.py's),
          which the pool's own drafting then reads instead of running the model;
  jacobi  the refinement passes of the block that would be proposed after the main branch
          (the same initial guess, the same passes), kept by (context, block, kept prefix).

A pass is a deterministic function of its context, so a kept pass is exactly the pass the
drafter would run: the proposal is the one drafted after the verdict, token for token (greedy)
and in law (sampling: every draw is still made after the verdict, from the same q, with the
worker's own stream). Overlap.reused counts the passes taken from what was drafted ahead.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

from specscope.core.drafters.base import Proposal
from specscope.core.drafters.jacobi import MAX_BLOCK, CausalRefiner, JacobiDrafter
from specscope.core.drafters.model import ModelDrafter, pick
from specscope.core.drafters.overlap import Memo
from specscope.core.drafters.pool import PoolDrafter
from specscope.core.events import Overlap
from specscope.core.lm import common_prefix
from specscope.core.sampling import Shaping


class CountingMemo(Memo):
    """A Memo that counts the q it gave from what was kept, and drafts chains itself (the pool
    asks its model for one token at a time through propose)."""

    def __init__(self, model: ModelDrafter) -> None:
        super().__init__(model)
        self.hits = 0

    def dist(self, ctx: list[int], shaping: Shaping) -> torch.Tensor:
        self.hits += tuple(ctx) in self.seen and shaping == self.shaping
        return super().dist(ctx, shaping)

    def propose(self, ids, k, shaping, generator) -> Proposal:
        from specscope.core.drafters.model import draft_chain

        return draft_chain(k, lambda drafted: self.dist(list(ids) + drafted, shaping), self.token_id,
                           self.full_q, self.model.settings.min_confidence, shaping, generator)


class KeptRefiner(CausalRefiner):
    """Jacobi's refiner whose passes, once run ahead, are kept by (context, block, kept)."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.kept: dict[tuple, tuple[list[int], list[float]]] = {}
        self.hits = 0

    def refine(self, ids, block, keep):
        key = (tuple(ids), tuple(block), min(keep, len(block) - 1), self.model.vocab_top_k)
        if key in self.kept:
            self.hits += 1
            out, probs = self.kept[key]
            return list(out), list(probs)
        out = super().refine(ids, block, keep)
        self.kept[key] = (list(out[0]), list(out[1]))
        return out


class PassSpeculator:
    """`pool` or `jacobi` in the worker, preparing the main branch's passes between proposals."""

    def __init__(self, model: ModelDrafter, method: str) -> None:
        self.memo = CountingMemo(model)
        self.method = method
        if method == "pool":
            self.drafter = PoolDrafter(self.memo)
            self.refiner = None
        else:
            self.refiner = KeptRefiner(self.memo)
            self.drafter = JacobiDrafter(self.refiner)
        self.tree = None
        self._last: tuple[list[int], Proposal] | None = None
        self._main: list[int] | None = None  # the main branch's context drafted ahead
        self.matched = False
        self.spec_passes, self.spec_s = 0, 0.0
        self.spec_key = None

    @property
    def model(self) -> ModelDrafter:
        return self.memo.model

    def _hits(self) -> int:
        return self.memo.hits if self.refiner is None else self.refiner.hits

    def reset(self) -> None:
        self.drafter.reset()
        self.memo.seen.clear()
        if self.refiner is not None:
            self.refiner.kept.clear()
        self.new_run()

    def new_run(self) -> None:
        self._last, self._main, self.matched = None, None, False
        self.spec_passes, self.spec_s = 0, 0.0

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None, overlap: bool) -> Proposal:
        key = (shaping, self.model.vocab_top_k)
        name = "first" if self._last is None else (
            "main" if self.matched and self._main == list(ids) and self.spec_key == key else "")
        if name != "main":  # nothing kept from ahead serves this context
            self.memo.seen.clear()
            if self.refiner is not None:
                self.refiner.kept.clear()
        else:
            self.memo.keep_only(list(ids))
        before = self._hits()
        proposal = self.drafter.propose(list(ids), k, shaping, generator)
        if overlap:
            proposal.overlap = Overlap(predrafted=self.spec_passes, reused=self._hits() - before,
                                       branch=name, hedges=0, hedge_missed=False,
                                       spec_s=self.spec_s, draft_idle_s=0.0, target_wait_s=0.0)
        self._last = (list(ids), proposal)
        self._main, self.matched = None, False
        self.spec_passes, self.spec_s = 0, 0.0
        return proposal

    def speculate(self, shaping: Shaping, generator: torch.Generator | None, ahead: int,
                  max_branches: int, stop: Callable[[], bool]) -> None:
        """The main branch's passes: q along its chain (pool), its block's refinement (jacobi)."""
        if self._last is None or ahead <= 0 or stop():
            return
        self.spec_key = (shaping, self.model.vocab_top_k)
        t = time.perf_counter()
        ids, proposal = self._last
        try:
            ctx = ids + list(proposal.tokens)
            q = self.memo.dist(ctx, shaping)
            self.spec_passes += 1
            ctx = ctx + [self.model.token_id(int(q.argmax()))]
            self._main = list(ctx)
            if self.refiner is None:
                for _ in range(ahead):
                    if stop():
                        return
                    q = self.memo.dist(ctx, shaping)
                    self.spec_passes += 1
                    ctx = ctx + [self.model.token_id(pick(q, shaping, generator))]
            else:
                self._refine_ahead(ctx, ahead, stop)
        finally:
            self.spec_s += time.perf_counter() - t

    def _refine_ahead(self, ctx: list[int], k: int, stop) -> None:
        """The passes JacobiDrafter.propose would run on ctx (its initial guess, its rule)."""
        jacobi = self.drafter
        k = min(k, MAX_BLOCK)
        steps = jacobi.refine_steps or jacobi.policy.choose(k)
        block, keep, passes = jacobi.initial_block(ctx, k), 0, 0
        while passes < min(k, steps) and not stop():
            new, _ = self.refiner.refine(ctx, block, keep)
            passes += 1
            self.spec_passes += 1
            keep = common_prefix(block[:-1], new[:-1]) + 1
            block = new
            if keep >= k:
                return

    def settle(self, committed: list[int], n_accepted: int = 0, proposed: bool = True) -> None:
        self.matched = self._main is not None and committed == self._main
        proposal = self._last[1] if proposed and self._last is not None else Proposal()
        self.drafter.feedback(list(committed), proposal, n_accepted)

