"""The rows a drafting head scores: the first K rows of a VocabTrim ranking and (context rows,
on by default) every other token already in the context.

A summary or an answer about a text copies its names and numbers, which a ranking counted on
other answers misses. A head whose state stands in for the target's (FastMTP's) can score any
row with the shared LM head, so those tokens are added as extra rows. The rows are fixed for a
whole proposal (taken from the committed ids alone, before drafting); q is zero outside them, so
rejection sampling stays exact.

Script rows (core/scripts.py, FastMTP's language-aware vocabulary): where the committed tokens are
mostly of one non-Latin script, the first m tokens of that script are rows too (before the
context's own, which they then leave out), so a Chinese or Russian answer has its common pieces
to draft with.
"""
from __future__ import annotations

import torch

from specscope.core.drafters.model import RankedHead
from specscope.core.lm import CachedLM, apply_rows, common_prefix


class ContextRows:
    """The first k ranked rows (k: `vocab_top_k`, set by the drafter), then the context's script's
    rows (`scripts`, a core/scripts.py ScriptRows, when given), then the context's other tokens
    in order of first appearance (when `on`)."""

    def __init__(self, target: CachedLM, ranked: RankedHead, on: bool = True,
                 scripts=None) -> None:
        self.target = target
        self.ranked = ranked
        self.on = on
        self.scripts = scripts if scripts is not None and scripts.m > 0 else None
        self.script: str | None = None  # the committed context's script (scripts.py), if any
        self.vocab_top_k = ranked.default_k
        ranking = ranked.ranking.cpu()
        self._rank_of = torch.empty_like(ranking)
        self._rank_of[ranking] = torch.arange(len(ranking))
        self.reset()

    def reset(self) -> None:
        self._seen_ids: list[int] = []  # the committed ids the context rows were taken from
        self._seen: dict[int, None] = {}  # their distinct tokens, in order of first appearance
        self._extra = None  # (k, how many seen) -> (parts, all ids)
        self._script_part = None  # (k, script) -> (rows, ids): kept while the script holds

    def see(self, ids: list[int]) -> None:
        """Take the tokens of the committed ids (a changed history starts over)."""
        if not self.on and self.scripts is None:
            return
        same = common_prefix(self._seen_ids, ids)
        if same < len(self._seen_ids):
            self._seen_ids, self._seen, self._extra, same = [], {}, None, 0
        for t in ids[same:]:
            self._seen.setdefault(int(t), None)
        self._seen_ids = list(ids)

    def extras(self):
        """(the extra row groups [(LM head rows, their ids)]: the script's rows outside the first
        k ranked, then the context's other tokens; every row's id: ranked first, then these)."""
        k = self.vocab_top_k
        key = (k, len(self._seen))
        if self._extra is None or self._extra[0] != key:
            _, ranked = self.ranked.rows(k)
            rank_of = self._rank_of.to(ranked.device)
            parts = []
            script_ids = ranked[:0]
            if self.scripts is not None:
                self.script = self.scripts.script(self._seen)
                if self._script_part is None or self._script_part[0] != (k, self.script):
                    more = self.scripts.rows(self.script).to(ranked.device)
                    more = more[rank_of[more] >= k]
                    rows = self.target.head_rows(more) if len(more) else None
                    self._script_part = ((k, self.script), (rows, more))
                if self._script_part[1][0] is not None:
                    parts.append(self._script_part[1])
                    script_ids = self._script_part[1][1]
            if self.on and self._seen:
                seen = torch.tensor(list(self._seen), dtype=torch.long, device=ranked.device)
                seen = seen[rank_of[seen] >= k]
                if len(script_ids):
                    seen = seen[~torch.isin(seen, script_ids)]
                if len(seen):
                    parts.append((self.target.head_rows(seen), seen))
            self._extra = (key, (parts, torch.cat([ranked] + [ids for _, ids in parts])))
        return self._extra[1]

    def row_ids(self) -> torch.Tensor:
        """The token id of every row q covers, in q's order."""
        return self.extras()[1]

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """The shared LM head over the drafting rows: [..., d] -> [..., rows]."""
        weight, _ = self.ranked.rows(self.vocab_top_k)
        parts, _ = self.extras()
        if not parts:
            return apply_rows(states, weight)
        return torch.cat([apply_rows(states, w) for w in [weight] + [rows for rows, _ in parts]], -1)

    def token_id(self, j: int) -> int:
        return int(self.row_ids()[j])

    def full_q(self, probs: torch.Tensor) -> torch.Tensor:
        """q over the rows as a full-vocabulary row (zero outside them)."""
        ids = self.row_ids()
        full = torch.zeros(self.target.vocab_size, dtype=probs.dtype, device=probs.device)
        return full.index_copy_(0, ids, probs)
