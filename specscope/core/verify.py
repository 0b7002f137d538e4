"""Verification of a draft (a chain, or a tree) as pure functions.

Notation: p is the target's distribution, q the drafter's. For a proposal of n nodes:
  p: [n+1, V]  row 0 is the target's distribution after the committed context (the root's next
               token), row i+1 the distribution after node i.
  q: [n, V]    row i is the drafter's distribution node i was sampled from, or None when the
               nodes are deterministic (lookup, greedy top-k), which counts as one-hot q.
A chain is the tree parents = [-1, 0, 1, ...] (Leviathan et al. 2023; Chen et al. 2023). For trees,
the children of a node are tried one by one with the residual updated after each rejection
(multi-candidate rejection sampling, as in SpecInfer), which keeps the target's distribution.

Randomness stays on p's device: one vector of uniforms is drawn per step (u[i] decides node i),
and chains are accepted in one vectorised comparison with one host transfer (as gpt-fast does).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from specscope.core.sampling import residual, sample
from specscope.core.tree import children, is_chain


@dataclass(frozen=True)
class Verdict:
    path: tuple[int, ...]  # accepted node indices, root to leaf
    token: int  # the target-chosen token: correction at the first rejection, else bonus

    @property
    def accepted(self) -> int:
        return len(self.path)


def chain(n: int) -> list[int]:
    return list(range(-1, n - 1))


def greedy_verify_tree(tokens: list[int], parents: list[int], target_argmax: list[int]) -> Verdict:
    """Follow the child that equals the target's argmax while there is one."""
    kids = children(parents)
    node, path = -1, []
    while True:
        want = target_argmax[node + 1]
        nxt = next((c for c in kids[node] if tokens[c] == want), None)
        if nxt is None:
            return Verdict(tuple(path), want)
        path.append(nxt)
        node = nxt


def sample_verify_tree(tokens: list[int], parents: list[int], p: torch.Tensor,
                       q: torch.Tensor | None, generator: torch.Generator | None) -> Verdict:
    """Accept child x with probability min(1, p(x)/q(x)); after a rejection p <- norm(max(0, p-q))
    and the next child is tried; when none is accepted, sample from what is left of p."""
    n = len(tokens)
    u = torch.rand(n, generator=generator, device=p.device)
    if is_chain(parents):
        return _sample_verify_chain(tokens, p, q, u, generator)
    kids = children(parents)
    node, path = -1, []
    while True:
        p_row = p[node + 1]
        for c in kids[node]:
            x = tokens[c]
            q_x = q[c, x] if q is not None else 1.0
            if bool((q_x > 0) & (u[c] * q_x < p_row[x])):  # u < p(x)/q(x), one host read
                path.append(c)
                node = c
                break
            p_row = residual(p_row, None if q is None else q[c], x)
        else:
            return Verdict(tuple(path), sample(p_row, generator))


def _sample_verify_chain(tokens: list[int], p: torch.Tensor, q: torch.Tensor | None,
                         u: torch.Tensor, generator: torch.Generator | None) -> Verdict:
    n = len(tokens)
    if n == 0:
        return Verdict((), sample(p[0], generator))
    rows = torch.arange(n, device=p.device)
    x = torch.tensor(tokens, device=p.device)
    p_x = p[rows, x]
    q_x = q[rows, x] if q is not None else torch.ones_like(p_x)
    ok = (q_x > 0) & (u * q_x < p_x)
    accepted = int(ok.long().cumprod(0).sum())  # the step's one host transfer before sampling
    if accepted == n:
        return Verdict(tuple(range(n)), sample(p[n], generator))
    rest = residual(p[accepted], None if q is None else q[accepted], tokens[accepted])
    return Verdict(tuple(range(accepted)), sample(rest, generator))
