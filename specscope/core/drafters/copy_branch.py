"""The copy branch of a draft tree: what followed the most recent earlier occurrence of the
context's last few tokens (prompt lookup), hung from the root beside a drafter's own nodes."""
from __future__ import annotations

import torch

from specscope.core.drafters.base import Proposal
from specscope.core.tree import children


def add_copy_branch(out: Proposal, copied: list[int], greedy: bool, vocab: int,
                    device) -> list[torch.Tensor]:
    """Append `copied` to the tree `out` as a chain from the root, following the tree's own
    nodes while they hold the copied tokens (no token is verified twice), the rest as
    deterministic nodes (q_token None). Returns the new nodes' one-hot q rows for a sampled
    proposal's q ([] when greedy)."""
    kids = children(out.parents)
    node, rows = -1, []
    for x in copied:
        same = next((c for c in kids.get(node, []) if out.tokens[c] == x), None)
        if same is not None:
            node = same
            continue
        kids = {}  # below a new node there is nothing to follow
        out.tokens.append(int(x))
        out.parents.append(node)
        out.q_token.append(None)
        node = len(out.tokens) - 1
        if not greedy:
            rows.append(torch.zeros(vocab, device=device))
            rows[-1][int(x)] = 1.0
    return rows
