"""Drafting ahead while the target verifies: SpecBranch's branch prediction on DuoDecoding's two
workers. This module is the drafter side's logic; core/workers.py runs it in its own process.

After a proposal D = d_0 .. d_{m-1} (a chain, or a tree's main chain: first children) for the
committed ids C, the target's verdict will commit C + D[:i] + [t] for some cut i <= m and the
target's token t (a correction for i < m, the bonus for i = m). Each (i, t) is a branch to
draft ahead from; under the drafter's own model its chance is

    est(i, c) = prod_{j < i} q_j(d_j) * q_i(c)        (c not among the drafted children at i)

so the worker drafts, until the verdict arrives or `max_branches` are done, first the main
branch (i = m, c = the drafter's own most likely next token: all accepted and the bonus
guessed), then hedges from the likeliest corrections (at most HEDGES_PER_POSITION a
position), best estimate first: where the drafter was least sure, early in the draft. Each branch continues `ahead` tokens by the method's own law (pick: argmax, or a
draw from q with the drafter's generator). When the verdict commits exactly a branch's
context, the next proposal starts with that branch's rows (drafters draft_chain / TreeDrafter
take them as `picked`) and their q (kept here, memo), and drafts on only past them; otherwise
every branch is discarded and the proposal is drafted afresh.

Why this keeps the target's law: a branch's tokens are drawn from q given its context with
the drafter's own random stream, before and without reading the target's draws; which branch
is used depends only on the committed context (the target's verdict), never on the branch's
tokens. Conditioned on the committed context, a reused branch's tokens are therefore draws
from the q the verifier is given, exactly like a proposal drafted after the verdict (see
docs/concepts.md, "Drafting ahead").
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from specscope.core.drafters.base import Proposal
from specscope.core.drafters.model import ModelDrafter, draft_chain, pick
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.events import Overlap
from specscope.core.sampling import Shaping
from specscope.core.tree import children


HEDGES_PER_POSITION = 2  # corrections guessed at one position, at most


@dataclass
class Branch:
    context: list[int]  # the committed ids it assumes: C + D[:i] + [c]
    cut: int  # i: where the verdict must cut for it (m: all accepted)
    estimate: float
    rows: list[int] = field(default_factory=list)  # drafter rows drafted after the context


class Memo:
    """The draft model as a chain source (DraftsByContext) whose q after each context drafted
    this step (and the branches drafted ahead) is kept, so a reused branch costs no pass."""

    def __init__(self, model: ModelDrafter) -> None:
        self.model = model
        self.seen: dict[tuple[int, ...], torch.Tensor] = {}
        self.shaping: Shaping | None = None

    def __getattr__(self, name):  # begin, end, token_id, full_q, configure, ...
        return getattr(self.model, name)

    def dist(self, ctx: list[int], shaping: Shaping) -> torch.Tensor:
        if shaping != self.shaping:
            self.seen.clear()
            self.shaping = shaping
        key = tuple(ctx)
        if key not in self.seen:
            self.seen[key] = self.model.dist(ctx, shaping)
        return self.seen[key]

    def keep_only(self, prefix: list[int]) -> None:
        """Forget every q whose context does not start with prefix."""
        n = len(prefix)
        self.seen = {k: v for k, v in self.seen.items() if list(k[:n]) == prefix}


class Speculator:
    """One model drafter (method 'draft' or 'tree') that drafts ahead between proposals."""

    def __init__(self, model: ModelDrafter, method: str = "draft", **tree_kw) -> None:
        self.memo = Memo(model)
        self.method = method
        self.tree = TreeDrafter(self.memo, **tree_kw) if method == "tree" else None
        self.branches: list[Branch] = []
        self.matched: Branch | None = None
        self.missed_hedge = False
        self._last: tuple[list[int], list[int], list[set[int]]] | None = None  # C, D rows, kids
        self.spec_tokens = 0
        self.spec_s = 0.0
        self.spec_key = None  # (shaping, vocabulary size) the branches were drafted under

    @property
    def model(self) -> ModelDrafter:
        return self.memo.model

    def reset(self) -> None:
        self.model.reset()
        self.memo.seen.clear()
        self.new_run()

    def new_run(self) -> None:
        """Nothing drafted ahead carries into a new run (its first step is 'first')."""
        self.branches, self.matched, self._last = [], None, None
        self.spec_tokens, self.spec_s = 0, 0.0

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None, overlap: bool) -> Proposal:
        key = (shaping, self.model.vocab_top_k)  # branches drafted under other settings are void
        branch = self.matched if (overlap and self.matched and self.matched.context == ids
                                  and self.spec_key == key) else None
        outcome = self._outcome(branch) if overlap else None
        picked = branch.rows[:k] if branch else []
        self.memo.keep_only(list(ids))
        if self.tree is not None:
            proposal = self.tree.propose(ids, k, shaping, generator, picked)
        else:
            m = self.memo
            proposal = draft_chain(k, lambda drafted: m.dist(list(ids) + drafted, shaping),
                                   m.token_id, m.full_q, m.model.settings.min_confidence, shaping,
                                   generator, picked=picked)
        reused = min(len(picked), len(_main_path(proposal.parents)))
        if outcome is not None:
            proposal.overlap = Overlap(reused=reused, **outcome)
        self._remember(ids, proposal)
        self.branches, self.matched, self.missed_hedge = [], None, False
        self.spec_tokens, self.spec_s = 0, 0.0
        return proposal

    def _outcome(self, branch: Branch | None) -> dict:
        if self._last is None:
            name = "first"
        else:
            name = "" if branch is None else ("main" if branch.cut == len(self._last[1]) else "hedge")
        return dict(predrafted=self.spec_tokens, branch=name,
                    hedges=sum(b.cut < len(self._last[1]) for b in self.branches) if self._last else 0,
                    hedge_missed=self.missed_hedge, spec_s=self.spec_s, draft_idle_s=0.0,
                    target_wait_s=0.0)

    def _remember(self, ids: list[int], proposal: Proposal) -> None:
        """The main path's rows and, at each of its nodes, the tokens already drafted there."""
        path = _main_path(proposal.parents)
        kids = children(proposal.parents)
        rows = [self._row(proposal.tokens[i]) for i in path]
        tried = [{proposal.tokens[c] for c in kids[-1 if d == 0 else path[d - 1]]}
                 for d in range(len(path))]
        self._last = (list(ids), rows, tried)

    def _row(self, token: int) -> int:
        return row_of(self.model, token)

    def speculate(self, shaping: Shaping, generator: torch.Generator | None, ahead: int,
                  max_branches: int, stop: Callable[[], bool]) -> None:
        """Draft branches after the last proposal, best first, until stop() or all are done."""
        if self._last is None or ahead <= 0:
            return
        self.spec_key = (shaping, self.model.vocab_top_k)
        t = time.perf_counter()
        try:
            self._speculate(shaping, generator, ahead, max_branches, stop)
        finally:
            self.spec_s += time.perf_counter() - t

    def _speculate(self, shaping, generator, ahead, max_branches, stop) -> None:
        ids, rows, tried = self._last
        m = self.memo
        tok = self.model.token_id
        if not m.begin(ids):
            return
        try:
            contexts = [ids + [tok(r) for r in rows[:i]] for i in range(len(rows) + 1)]
            if stop():
                return
            dists = [m.dist(c, shaping) for c in contexts]  # all memo hits but the last
            # the main branch first (all accepted, the bonus guessed as the drafter's own next
            # token), then hedges from the likeliest corrections, best estimate first
            main_q = dists[-1]
            top = int(main_q.argmax())
            main = Branch(contexts[-1] + [tok(top)], len(rows), 1.0)
            candidates, reach = [], 1.0
            for i, q in enumerate(dists):
                skip = tried[i] if i < len(rows) else {tok(top)}
                top2 = torch.topk(q, min(len(q), HEDGES_PER_POSITION + len(skip)))
                alts = [(p, r) for p, r in zip(top2.values.tolist(), top2.indices.tolist())
                        if tok(r) not in skip][:HEDGES_PER_POSITION]
                candidates += [Branch(contexts[i] + [tok(r)], i, reach * p) for p, r in alts]
                if i < len(rows):
                    reach *= float(q[rows[i]])
            candidates.sort(key=lambda b: -b.estimate)
            candidates.insert(0, main)
            for branch in candidates[:max_branches]:
                if stop():
                    return
                self.branches.append(branch)
                ctx = list(branch.context)
                for _ in range(ahead):
                    if stop():
                        return
                    q = m.dist(ctx, shaping)
                    row = pick(q, shaping, generator)
                    branch.rows.append(row)
                    ctx.append(tok(row))
                    self.spec_tokens += 1
        finally:
            m.end()

    def settle(self, committed: list[int], n_accepted: int = 0, proposed: bool = True) -> None:
        """The verdict: keep the branch whose context the target committed, if one was drafted."""
        self.matched = next((b for b in self.branches if b.context == committed), None)
        if self._last is not None and self.matched is None:
            ids, rows, _ = self._last
            cut = kept_of(ids, [self.model.token_id(r) for r in rows], committed)
            self.missed_hedge = cut < len(rows) and any(b.cut == cut for b in self.branches)


def row_of(model: ModelDrafter, token: int) -> int | None:
    """The drafter's row of a token id (its head may be trimmed to a ranking); None outside it."""
    _, rows = model.head_rows()
    if rows is None:
        return token
    hit = (rows == token).nonzero()
    return int(hit[0]) if len(hit) else None


def kept_of(ids: list[int], drafted: list[int], committed: list[int]) -> int:
    """How many of the tokens drafted after `ids` the verdict that committed `committed` kept."""
    cut = 0
    while cut < len(drafted) and len(ids) + cut < len(committed) \
            and committed[len(ids) + cut] == drafted[cut]:
        cut += 1
    return cut


def _main_path(parents: list[int]) -> list[int]:
    """Node indices of the first-child path from the root (a chain: all of it)."""
    kids = children(parents)
    path, node = [], -1
    while kids[node]:
        node = kids[node][0]
        path.append(node)
    return path
