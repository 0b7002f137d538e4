"""Ouroboros-style phrase pool around a draft model.

The pool maps the previous `key_len` tokens to the phrase (up to `phrase_len` tokens) that the
target produced after them, harvested from the committed ids after every step (accepted drafts
and the target's own corrections and bonus tokens). It lives until `reset()`, so it carries
over between the turns of a conversation (bench runs reset it), and it is an LRU map capped at
`max_entries` keys (memory <= max_entries * (key_len + phrase_len) ids).

Proposing a chain of up to k tokens:
  - the pool matches the committed tail: propose from the pool alone (phrases chained by their
    own tails), without running the draft model;
  - otherwise the draft model drafts token by token, and whenever the chain's tail matches a
    pool key the whole phrase is appended instead of continuing token by token.

Exactness: a pool token is a deterministic function of the context (the pool only changes in
feedback, between steps), so its q row is one-hot; draft-model tokens keep the draft model's q
rows. Rejection sampling with the mixed [n, V] q is exact row by row.
"""
from __future__ import annotations

from collections import OrderedDict

import torch

from specscope.core.drafters.base import DrafterBase, DraftSettings, Proposal
from specscope.core.drafters.model import ModelDrafter
from specscope.core.sampling import Shaping


class PhrasePool:
    """key (tuple of key_len ids) -> the latest phrase that followed it; LRU-bounded."""

    def __init__(self, key_len: int = 2, phrase_len: int = 8, max_entries: int = 8192) -> None:
        if key_len < 1 or phrase_len < 1 or max_entries < 1:
            raise ValueError("key_len, phrase_len and max_entries must be >= 1")
        self.key_len = key_len
        self.phrase_len = phrase_len
        self.max_entries = max_entries
        self.phrases: OrderedDict[tuple[int, ...], tuple[int, ...]] = OrderedDict()
        self.lookups = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self.phrases)

    def add(self, ids: list[int], start: int) -> None:
        """Harvest every phrase of `ids` that begins at index >= start (key before it)."""
        for i in range(max(start, self.key_len), len(ids)):
            key = tuple(ids[i - self.key_len:i])
            phrase = tuple(ids[i:i + self.phrase_len])
            old = self.phrases.pop(key, None)
            # A phrase cut short by the end of the text does not replace a longer one it begins.
            if old is not None and len(old) > len(phrase) and old[:len(phrase)] == phrase:
                phrase = old
            self.phrases[key] = phrase
            if len(self.phrases) > self.max_entries:
                self.phrases.popitem(last=False)  # least recently used

    def lookup(self, ctx: list[int]) -> tuple[int, ...]:
        """The phrase for ctx's last key_len tokens, () on a miss. Counts lookups and hits."""
        if len(ctx) < self.key_len:
            return ()
        self.lookups += 1
        key = tuple(ctx[-self.key_len:])
        phrase = self.phrases.get(key)
        if phrase is None:
            return ()
        self.hits += 1
        self.phrases.move_to_end(key)
        return phrase


class PoolDrafter(DrafterBase):
    name = "pool"
    accepts_vocab_top_k = True

    def __init__(self, model: ModelDrafter, key_len: int = 2, phrase_len: int = 8,
                 max_entries: int = 8192) -> None:
        self.model = model
        self.pool = PhrasePool(key_len, phrase_len, max_entries)
        self.drafted_from_pool = 0  # pool tokens proposed
        self.accepted_from_pool = 0  # of those, accepted by the target
        self._step_start = 0  # len(ids) when the last proposal was made
        self._run_start = 0  # where the current run's generated text begins
        self._last_ids: list[int] = []  # the committed ids after the last step
        self._proposal: Proposal | None = None
        self._from_pool: list[bool] = []

    def stats(self) -> dict[str, float]:
        """pool_size (keys), hits/lookups and hit_rate of pool lookups, pool tokens drafted and
        accepted (pool_acceptance = accepted/drafted)."""
        p = self.pool
        return {
            "pool_size": len(p),
            "lookups": p.lookups,
            "hits": p.hits,
            "hit_rate": p.hits / p.lookups if p.lookups else 0.0,
            "pool_drafted": self.drafted_from_pool,
            "pool_accepted": self.accepted_from_pool,
            "pool_acceptance": (self.accepted_from_pool / self.drafted_from_pool
                                if self.drafted_from_pool else 0.0),
        }

    def configure(self, settings: DraftSettings) -> None:
        self.model.configure(settings)  # vocabulary size and cut-off reach the draft model
        self.settings = settings

    def reset(self) -> None:
        """An empty pool and counters, and the draft model's cache: nothing carries over."""
        self.pool = PhrasePool(self.pool.key_len, self.pool.phrase_len, self.pool.max_entries)
        self.drafted_from_pool = self.accepted_from_pool = 0
        self._step_start = self._run_start = 0
        self._last_ids, self._proposal, self._from_pool = [], None, []
        self.model.reset()

    def read_params(self) -> int:
        return self.model.read_params()

    def prefill(self, ids: list[int]):
        return self.model.prefill(ids)

    def kv_bytes(self) -> int:
        return self.model.kv_bytes()

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        self._note_step(ids)
        out = Proposal()
        rows: list[torch.Tensor | None] = []  # q row per token; None: one-hot (pool)
        from_pool: list[bool] = []
        pool_only = None  # decided by the first lookup, at the committed tail
        while len(out.tokens) < k:
            phrase = self.pool.lookup(ids + out.tokens)
            if pool_only is None:
                pool_only = bool(phrase)
            if phrase:
                take = list(phrase[:k - len(out.tokens)])
                out.tokens += take
                out.q_token += [None] * len(take)
                rows += [None] * len(take)
                from_pool += [True] * len(take)
            elif pool_only:
                break
            else:
                one = self.model.propose(ids + out.tokens, 1, shaping, generator)
                out.tokens += one.tokens
                out.q_token += one.q_token
                rows.append(None if one.q is None else one.q[0])
                from_pool.append(False)
        out.parents = list(range(-1, len(out.tokens) - 1))
        out.q = _mix_q(out.tokens, rows, self.model.target_vocab)
        self._proposal, self._from_pool = out, from_pool
        self.drafted_from_pool += sum(from_pool)
        return out

    def feedback(self, ids: list[int], proposal: Proposal, n_accepted: int) -> None:
        if proposal is not self._proposal:  # the engine skipped propose (k == 0): one token
            self._note_step(ids[:-1])
            self._from_pool = []
        self.accepted_from_pool += sum(self._from_pool[:n_accepted])
        # Re-harvest from phrase_len - 1 tokens back, so phrases cut short at the end of the
        # previous step grow to full length now.
        self.pool.add(ids, max(self._run_start, self._step_start - self.pool.phrase_len + 1))
        self._last_ids = list(ids)
        self.model.feedback(ids, proposal, n_accepted)

    def _note_step(self, ids: list[int]) -> None:
        if ids != self._last_ids:
            self._run_start = len(ids)  # a new run or turn: its prompt is not harvested
        self._step_start = len(ids)


def _mix_q(tokens: list[int], rows: list[torch.Tensor | None], vocab: int) -> torch.Tensor | None:
    """[n, V] q with the draft model's rows where it sampled and one-hot rows for pool tokens;
    None when every row is one-hot (greedy runs, pool-only proposals)."""
    if all(r is None for r in rows):
        return None
    like = next(r for r in rows if r is not None)
    q = torch.zeros(len(tokens), vocab, dtype=like.dtype, device=like.device)
    for i, (token, row) in enumerate(zip(tokens, rows)):
        if row is None:
            q[i, token] = 1.0
        else:
            q[i] = row
    return q
