"""Draft trees as plain data: `parents[i]` is the index of node i's parent, -1 for the context.

Nodes are listed parents-first. A chain is the tree [-1, 0, 1, ...]. The target verifies a tree in
one pass over [last committed token] + nodes, where each node attends to the cached context, the
root, its ancestors and itself, at position (context length + depth).
"""
from __future__ import annotations

import torch


def is_chain(parents: list[int] | tuple[int, ...]) -> bool:
    return all(p == i - 1 for i, p in enumerate(parents))


def depths(parents) -> list[int]:
    out: list[int] = []
    for p in parents:
        out.append(0 if p < 0 else out[p] + 1)
    return out


def ancestors(parents, node: int) -> list[int]:
    """The ancestors of `node`, its parent first, up to (not including) the root."""
    out = []
    a = parents[node]
    while a >= 0:
        out.append(a)
        a = parents[a]
    return out


def children(parents) -> dict[int, list[int]]:
    """Children of every node, -1 being the root, in proposal order."""
    kids: dict[int, list[int]] = {-1: []}
    for i, p in enumerate(parents):
        kids.setdefault(i, [])
        kids[p].append(i)
    return kids


def ancestors_mask(parents) -> torch.Tensor:
    """[n+1, n+1] bool: row r may attend to column c (index 0 is the root, node i is i+1)."""
    n = len(parents)
    mask = torch.zeros(n + 1, n + 1, dtype=torch.bool)
    mask[:, 0] = True
    for i, p in enumerate(parents):
        mask[i + 1] = mask[p + 1] if p >= 0 else mask[0]
        mask[i + 1, i + 1] = True
    return mask


def tree_attention(parents, cached: int, dtype: torch.dtype, device=None) -> torch.Tensor:
    """Additive 4D mask [1, 1, n+1, cached+n+1]: 0 where attention is allowed, -inf-like elsewhere."""
    allowed = torch.cat([torch.ones(len(parents) + 1, cached, dtype=torch.bool),
                         ancestors_mask(parents)], dim=1)
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None].to(device)


def tree_positions(parents, first: int, device=None) -> torch.Tensor:
    """Position ids [1, n+1]: the root at `first`, a node at first + 1 + depth."""
    pos = [first] + [first + 1 + d for d in depths(parents)]
    return torch.tensor([pos], device=device)
