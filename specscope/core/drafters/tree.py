"""Tree drafting with a draft model: a main chain, plus alternatives where the drafter is unsure.

At every main-chain position whose top draft probability is below `branch_below`, the drafter
hedges (SpecBranch's likely rejection points; DuoDecoding's several sequences when unsure): it adds
`width - 1` alternative children (the next-best tokens when greedy; fresh samples from the same q
when sampling, so the multi-candidate verifier stays exact) and extends each by up to `alt_len`
tokens. `branch_below=1.0` branches everywhere (a static top-k tree).
"""
from __future__ import annotations

import torch

from specscope.core.drafters.base import Proposal
from specscope.core.drafters.model import ModelDrafter
from specscope.core.sampling import Shaping, probs_from_logits, sample


class TreeDrafter:
    name = "tree"

    def __init__(self, model: ModelDrafter, width: int = 2, branch_below: float = 0.6,
                 alt_len: int = 2, max_nodes: int = 24) -> None:
        self.model = model
        self.width = width
        self.branch_below = branch_below
        self.alt_len = alt_len
        self.max_nodes = max_nodes
        self.min_confidence = 0.0

    def read_params(self) -> int:
        return self.model.read_params()

    def set_vocab_top_k(self, k: int | None) -> None:
        self.model.set_vocab_top_k(k)

    def _dist(self, ctx: list[int], shaping: Shaping) -> torch.Tensor:
        """q over the drafter's rows: shaped when sampling, the plain softmax when greedy."""
        weight, _ = self.model.head_rows()
        logits = self.model.lm.logits(self.model.lm.forward(ctx, 1)[-1], weight)
        return (torch.softmax(logits, -1) if shaping.greedy else probs_from_logits(logits, shaping))

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        _, rows = self.model.head_rows()
        to_id = (lambda j: j) if rows is None else (lambda j: int(rows[j]))
        out = Proposal()
        q_rows: list[torch.Tensor] = []

        def add(j: int, parent: int, probs: torch.Tensor) -> int:
            out.tokens.append(to_id(j))
            out.parents.append(parent)
            out.q_token.append(float(probs[j]))
            if not shaping.greedy:
                q_rows.append(self.model._to_full_vocab(probs, rows))
            return len(out.tokens) - 1

        def pick(probs: torch.Tensor, rank: int) -> int:
            if shaping.greedy:
                return int(torch.topk(probs, rank + 1).indices[rank])
            return sample(probs, generator)

        # the main chain; remember where the drafter was unsure
        ctx, parent, hedges = list(ids), -1, []
        for depth in range(k):
            probs = self._dist(ctx, shaping)
            top = float(probs.max())
            if depth > 0 and top < self.min_confidence:
                break
            node = add(pick(probs, 0), parent, probs)
            if top < self.branch_below:
                hedges.append((parent, list(ctx), probs, depth))
            parent = node
            ctx.append(out.tokens[node])
        # alternatives at the unsure positions, most shallow first
        for parent, base_ctx, probs, depth in hedges:
            for rank in range(1, self.width):
                if len(out.tokens) >= self.max_nodes:
                    break
                node = add(pick(probs, rank), parent, probs)
                alt_ctx = base_ctx + [out.tokens[node]]
                for d in range(depth + 1, min(k, depth + self.alt_len)):
                    if len(out.tokens) >= self.max_nodes:
                        break
                    p2 = self._dist(alt_ctx, shaping)
                    node = add(pick(p2, 0), node, p2)
                    alt_ctx.append(out.tokens[node])
        if q_rows:
            out.q = torch.stack(q_rows)
        return out

    def feedback(self, ids, proposal, n_accepted) -> None:
        pass
