"""The rows a drafting head scores: the first K rows of a VocabTrim ranking and (context rows,
on by default) every other token already in the context.

A summary or an answer about a text copies its names and numbers, which a ranking counted on
other answers misses. A head whose state stands in for the target's (FastMTP's) can score any
row with the shared LM head, so those tokens are added as extra rows. The rows are fixed for a
whole proposal (taken from the committed ids alone, before drafting); q is zero outside them, so
rejection sampling stays exact.
"""
from __future__ import annotations

import torch

from specscope.core.drafters.model import RankedHead
from specscope.core.lm import CachedLM, apply_rows, common_prefix


class ContextRows:
    """The first k ranked rows (k: `vocab_top_k`, set by the drafter), then the context's other
    tokens in order of first appearance (when `on`)."""

    def __init__(self, target: CachedLM, ranked: RankedHead, on: bool = True) -> None:
        self.target = target
        self.ranked = ranked
        self.on = on
        self.vocab_top_k = ranked.default_k
        ranking = ranked.ranking.cpu()
        self._rank_of = torch.empty_like(ranking)
        self._rank_of[ranking] = torch.arange(len(ranking))
        self.reset()

    def reset(self) -> None:
        self._seen_ids: list[int] = []  # the committed ids the context rows were taken from
        self._seen: dict[int, None] = {}  # their distinct tokens, in order of first appearance
        self._extra = None  # (k, how many seen) -> (extra rows, their ids, all ids)

    def see(self, ids: list[int]) -> None:
        """Take the tokens of the committed ids (a changed history starts over)."""
        if not self.on:
            return
        same = common_prefix(self._seen_ids, ids)
        if same < len(self._seen_ids):
            self._seen_ids, self._seen, self._extra, same = [], {}, None, 0
        for t in ids[same:]:
            self._seen.setdefault(int(t), None)
        self._seen_ids = list(ids)

    def extras(self):
        """(the LM head's rows of context tokens outside the first k ranked, their ids, every
        row's id: ranked first, then these)."""
        k = self.vocab_top_k
        key = (k, len(self._seen))
        if self._extra is None or self._extra[0] != key:
            _, ranked = self.ranked.rows(k)
            seen = torch.tensor(list(self._seen), dtype=torch.long, device=ranked.device)
            extra = seen[self._rank_of.to(ranked.device)[seen] >= k] if len(seen) else seen
            rows = self.target.head_rows(extra) if len(extra) else None
            self._extra = (key, (rows, extra, torch.cat([ranked, extra])))
        return self._extra[1]

    def row_ids(self) -> torch.Tensor:
        """The token id of every row q covers, in q's order."""
        return self.extras()[2]

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """The shared LM head over the drafting rows: [..., d] -> [..., rows]."""
        weight, _ = self.ranked.rows(self.vocab_top_k)
        out = apply_rows(states, weight)
        extra, _, _ = self.extras()
        if extra is not None:
            out = torch.cat([out, apply_rows(states, extra)], -1)
        return out

    def token_id(self, j: int) -> int:
        return int(self.row_ids()[j])

    def full_q(self, probs: torch.Tensor) -> torch.Tensor:
        """q over the rows as a full-vocabulary row (zero outside them)."""
        ids = self.row_ids()
        full = torch.zeros(self.target.vocab_size, dtype=probs.dtype, device=probs.device)
        return full.index_copy_(0, ids, probs)
