"""Drafting ahead for the model drafters whose proposal is not a plain chain of picks: the phrase
pool (`pool`) and Jacobi block refinement (`jacobi`). Their proposal depends on more than q (the
pool's phrases, a refined block), so what the worker prepares while the target verifies is the
draft model's *passes* for the main branch (all of the proposal accepted, the bonus guessed as
the drafter's most likely next token), not tokens:

  pool    q after each context of the main branch's chain (a Memo, as drafters/overlap.py's),
          which the pool's own drafting then reads instead of running the model;
  jacobi  the refinement passes of the block that would be proposed after the main branch
          (the same initial guess, the same passes), kept by (context, block, kept prefix).

After the main branch, the same passes for hedges (as drafters/overlap.py's): the contexts
C + D[:i] + [c] for the likeliest corrections c the draft model gives at each position i,
best estimate first (prod_{j<i} q_j(d_j) * q_i(c)), until the verdict or `max_branches`.

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
from specscope.core.drafters.overlap import HEDGES_PER_POSITION, Memo, kept_of, row_of
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
        self._hedges: list[tuple[list[int], int]] = []  # (context, cut) of hedges drafted ahead
        self.matched = ""  # the branch the verdict committed: "main", "hedge" or ""
        self._committed: list[int] | None = None  # the context that verdict committed
        self.missed_hedge = False
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
        self._last, self._main, self.matched = None, None, ""
        self._hedges, self.missed_hedge = [], False
        self.spec_passes, self.spec_s = 0, 0.0

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None, overlap: bool) -> Proposal:
        key = (shaping, self.model.vocab_top_k)
        name = "first" if self._last is None else (
            self.matched if self.matched and self._committed == list(ids) and self.spec_key == key
            else "")
        if not name or name == "first":  # nothing kept from ahead serves this context
            self.memo.seen.clear()
            if self.refiner is not None:
                self.refiner.kept.clear()
        else:  # the committed branch's passes (the others' contexts can never be asked again)
            self.memo.keep_only(list(ids))
            if self.refiner is not None:
                self.refiner.kept = {k: v for k, v in self.refiner.kept.items() if k[0] == tuple(ids)}
        before = self._hits()
        proposal = self.drafter.propose(list(ids), k, shaping, generator)
        if overlap:
            proposal.overlap = Overlap(predrafted=self.spec_passes, reused=self._hits() - before,
                                       branch=name, hedges=len(self._hedges),
                                       hedge_missed=self.missed_hedge, spec_s=self.spec_s,
                                       draft_idle_s=0.0, target_wait_s=0.0)
        self._last = (list(ids), proposal)
        self._main, self._hedges, self.matched, self.missed_hedge = None, [], "", False
        self.spec_passes, self.spec_s = 0, 0.0
        return proposal

    def speculate(self, shaping: Shaping, generator: torch.Generator | None, ahead: int,
                  max_branches: int, stop: Callable[[], bool]) -> None:
        """The main branch's passes: q along its chain (pool), its block's refinement (jacobi);
        then the hedges' (module text), best first, until stop() or max_branches in all."""
        if self._last is None or ahead <= 0 or stop():
            return
        self.spec_key = (shaping, self.model.vocab_top_k)
        t = time.perf_counter()
        ids, proposal = self._last
        tok = self.model.token_id
        try:
            drafted = list(proposal.tokens)
            ctx = ids + drafted
            q = self.memo.dist(ctx, shaping)
            self.spec_passes += 1
            bonus = tok(int(q.argmax()))
            self._main = ctx + [bonus]
            self._branch(self._main, ahead, shaping, generator, stop)
            if max_branches <= 1 or stop():
                return
            for context, cut in self._hedge_contexts(ids, drafted, bonus, shaping, stop)[:max_branches - 1]:
                if stop():
                    return
                self._hedges.append((context, cut))
                self._branch(context, ahead, shaping, generator, stop)
        finally:
            self.spec_s += time.perf_counter() - t

    def _branch(self, ctx: list[int], ahead: int, shaping: Shaping,
                generator: torch.Generator | None, stop: Callable[[], bool]) -> None:
        """The passes drafting would run after ctx: q along a chain drawn by the method's law
        (pool), or the refinement of the block proposed there (jacobi)."""
        if self.refiner is not None:
            self._refine_ahead(list(ctx), ahead, stop)
            return
        ctx = list(ctx)
        for _ in range(ahead):
            if stop():
                return
            q = self.memo.dist(ctx, shaping)
            self.spec_passes += 1
            ctx.append(self.model.token_id(pick(q, shaping, generator)))

    def _hedge_contexts(self, ids: list[int], drafted: list[int], bonus: int, shaping: Shaping,
                        stop: Callable[[], bool]) -> list[tuple[list[int], int]]:
        """(C + D[:i] + [c], i) for the likeliest corrections c at each position i, best
        estimate first; the draft model's q at each prefix (kept passes where drafting ran
        them; a pass each where it did not, as jacobi's refined block)."""
        tok = self.model.token_id
        out, reach = [], 1.0
        for i in range(len(drafted) + 1):
            if stop():
                break
            ctx = ids + drafted[:i]
            known = tuple(ctx) in self.memo.seen
            q = self.memo.dist(ctx, shaping)
            self.spec_passes += not known
            skip = {drafted[i] if i < len(drafted) else bonus}
            top = torch.topk(q, min(len(q), HEDGES_PER_POSITION + 1))
            alts = [(p, r) for p, r in zip(top.values.tolist(), top.indices.tolist())
                    if tok(r) not in skip][:HEDGES_PER_POSITION]
            out += [(reach * p, ctx + [tok(r)], i) for p, r in alts]
            if i < len(drafted):
                r = row_of(self.model, drafted[i])
                reach *= float(q[r]) if r is not None else 0.0
        out.sort(key=lambda e: -e[0])
        return [(ctx, cut) for _, ctx, cut in out]

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
        hedges = [ctx for ctx, _ in self._hedges]
        self._committed = list(committed)
        self.matched = "main" if self._main is not None and committed == self._main else (
            "hedge" if committed in hedges else "")
        self.missed_hedge = False
        if not self.matched and self._last is not None:  # a hedge ready at the cut, another token
            drafted = list(self._last[1].tokens)
            cut = kept_of(self._last[0], drafted, committed)
            self.missed_hedge = cut < len(drafted) and any(c == cut for _, c in self._hedges)
        proposal = self._last[1] if proposed and self._last is not None else Proposal()
        self.drafter.feedback(list(committed), proposal, n_accepted)

