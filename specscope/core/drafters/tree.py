"""Tree drafting with a draft model: a main chain, plus alternatives where the drafter is unsure.

At every main-chain position whose top draft probability is below `branch_below`, the drafter
hedges (SpecBranch's likely rejection points; DuoDecoding's several sequences when unsure): it adds
`width - 1` alternative children (the next-best tokens when greedy; fresh samples from the same q
when sampling, so the multi-candidate verifier stays exact) and extends each by up to `alt_len`
tokens. `branch_below=1.0` branches everywhere (a static top-k tree). At most `max_nodes` nodes.

The chain source is any drafter that drafts by context (base.py's DraftsByContext: begin(ids),
dist(ctx, shaping), end(), token_id(row), full_q(probs)). The draft model (`tree`) does; so does
FastMTP's head (MTPDrafter crops and replays its cache between branches), though `mtp-tree`
grows its trees a level at a time instead (drafters/mtp_tree.py: one batched head step per
level).
"""
from __future__ import annotations

import torch

from specscope.core.drafters.base import DrafterBase, DraftsByContext, DraftSettings, Proposal
from specscope.core.drafters.model import pick
from specscope.core.sampling import Shaping


class TreeDrafter(DrafterBase):
    accepts_vocab_top_k = True

    def __init__(self, model: DraftsByContext, width: int = 2, branch_below: float = 0.6,
                 alt_len: int = 2, max_nodes: int = 24, name: str = "tree",
                 branch_depth: int | None = None) -> None:
        self.model = model
        self.name = name
        self.needs_target_hidden = model.needs_target_hidden
        self.width = width
        self.branch_below = branch_below
        self.alt_len = alt_len
        self.max_nodes = max_nodes
        self.branch_depth = branch_depth  # hedge only above this depth (None: at any depth)

    def read_params(self) -> int:
        return self.model.read_params()

    def prefill(self, ids: list[int]):
        return self.model.prefill(ids)

    def kv_bytes(self) -> int:
        return self.model.kv_bytes()

    def configure(self, settings: DraftSettings) -> None:
        self.model.configure(settings)
        self.settings = settings

    def reset(self) -> None:
        self.model.reset()

    def observe_target(self, start: int, hidden: torch.Tensor) -> None:
        self.model.observe_target(start, hidden)

    def feedback(self, ids: list[int], proposal: Proposal, n_accepted: int) -> None:
        self.model.feedback(ids, proposal, n_accepted)

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None, picked: list[int] = ()) -> Proposal:
        """`picked`: main-chain rows already drawn from the model's same q (drafted ahead,
        drafters/overlap.py); they stand in for the main chain's first picks."""
        m = self.model
        if k <= 0 or not m.begin(ids):
            return Proposal()
        try:
            return self._grow(ids, k, shaping, generator, picked)
        finally:
            m.end()

    def _grow(self, ids: list[int], k: int, shaping: Shaping,
              generator: torch.Generator | None, picked: list[int] = ()) -> Proposal:
        m = self.model
        out = Proposal()
        q_rows: list[torch.Tensor] = []

        def add(j: int, parent: int, probs: torch.Tensor) -> int:
            out.tokens.append(m.token_id(j))
            out.parents.append(parent)
            out.q_token.append(float(probs[j]))
            if not shaping.greedy:
                q_rows.append(m.full_q(probs))
            return len(out.tokens) - 1

        # the main chain; remember where the drafter was unsure
        ctx, parent, hedges, path = list(ids), -1, [], 1.0
        for depth in range(min(k, self.max_nodes)):
            probs = m.dist(ctx, shaping)
            top = float(probs.max())
            path *= top
            if depth > 0 and path < self.settings.min_confidence:
                break
            row = picked[depth] if depth < len(picked) else pick(probs, shaping, generator)
            node = add(row, parent, probs)
            if top < self.branch_below and (self.branch_depth is None or depth < self.branch_depth):
                hedges.append((parent, list(ctx), probs, depth))
            parent = node
            ctx.append(out.tokens[node])
        # alternatives at the unsure positions, most shallow first
        for parent, base_ctx, probs, depth in hedges:
            for rank in range(1, self.width):
                if len(out.tokens) >= self.max_nodes:
                    break
                node = add(pick(probs, shaping, generator, rank), parent, probs)
                alt_ctx = base_ctx + [out.tokens[node]]
                for _ in range(depth + 1, min(k, depth + self.alt_len)):
                    if len(out.tokens) >= self.max_nodes:
                        break
                    p2 = m.dist(alt_ctx, shaping)
                    node = add(pick(p2, shaping, generator), node, p2)
                    alt_ctx.append(out.tokens[node])
        if q_rows:
            out.q = torch.stack(q_rows)
        return out
