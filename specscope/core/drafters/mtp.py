"""FastMTP: the target drafts for itself through one small head on its own last hidden state.

Step 1 combines the target's hidden state at the last position it has verified (n-1) with the
last committed token x_n; step j > 1 feeds the head's own state and its own drafted token back
through the same weights (see core/mtp.py). A drafted token costs one decoder layer and a trimmed
LM head, not a model.

The head's KV cache holds entry t = (h_t, x_{t+1}) for committed positions only: entries are made
from the target's hidden states (handed over by the engine through observe_target), the draft
steps' entries are cropped away at the end of every proposal, and anything past the longest
common prefix with the committed ids (or past a re-observed hidden state) is rolled back by
position. Logits cover the first K rows of the artifact's ranking and (context rows, on by
default) every other token already in the context (core/context_rows.py), and (script rows,
the profile's script_rows) the common tokens of the context's script (core/scripts.py), fixed for
a whole proposal (set in begin(), from the committed ids alone).

Tree drafting with the head: drafters/mtp_tree.py (a level at a time), or TreeDrafter
(drafters/tree.py) over this drafter's begin/dist/end.
"""
from __future__ import annotations

import torch

from specscope.core.context_rows import ContextRows
from specscope.core.drafters.base import DrafterBase, DraftSettings, Proposal, refuse_overlap
from specscope.core.drafters.model import RankedHead, draft_chain, draft_dist
from specscope.core.errors import SpecScopeError
from specscope.core.lm import CachedLM, common_prefix, drop_last
from specscope.core.mtp import MTPArtifact, additive, cache_len, causal_after
from specscope.core.sampling import Shaping
from specscope.core.window import cache_bytes


class MTPDrafter(DrafterBase):
    name = "mtp"
    accepts_vocab_top_k = True
    needs_target_hidden = True

    def __init__(self, target: CachedLM, artifact: MTPArtifact, context_rows: bool = True,
                 scripts=None) -> None:
        """scripts: a core/scripts.py ScriptRows (the context's script's rows), or None."""
        self.target = target
        self.head = artifact.head
        self.rows = ContextRows(target, RankedHead(target, artifact.ranking, artifact.k), context_rows,
                                scripts)
        self.reset()

    # ---- the interface -------------------------------------------------------------------------
    def configure(self, settings: DraftSettings) -> None:
        refuse_overlap(settings, self.name)
        k = settings.vocab_top_k
        ranked = self.rows.ranked
        if k is not None and not 1 <= k <= len(ranked):
            raise SpecScopeError(f"vocab top-k must be between 1 and {len(ranked)}, got {k}")
        self.settings = settings
        self.rows.vocab_top_k = k if k is not None else ranked.default_k

    def reset(self) -> None:
        self.hidden = torch.empty(0, self.target.hidden_size, device=self.target.device,
                                  dtype=next(self.head.parameters()).dtype)
        # the token at each hidden position (None: observed, not yet matched to ids; -1: a gap)
        self.hidden_tok: list[int | None] = []
        self.cache = self.head.new_cache()
        self.cached_ids: list[int] = []  # the ids the cache entries were made from (x_0..x_c)
        self.rows.reset()

    def kv_bytes(self) -> int:
        """The head's KV cache and the target hidden states it keeps (both grow with the
        context: the draft window does not apply to this drafter)."""
        return cache_bytes(self.cache) + self.hidden.numel() * self.hidden.element_size()

    def read_params(self) -> int:
        return self.head.param_count() + len(self.row_ids()) * self.target.hidden_size

    # ---- the rows the head drafts over (core/context_rows.py) --------------------------------
    def row_ids(self) -> torch.Tensor:
        """The token id of every row q covers, in q's order."""
        return self.rows.row_ids()

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """The shared LM head over the drafting rows: [..., d] -> [..., rows]."""
        return self.rows.logits(states)

    def observe_target(self, start: int, hidden: torch.Tensor) -> None:
        """The target's hidden states at positions start..; anything we held from start on is
        replaced, and cache entries made from it are dropped. A gap (another method ran in
        between) is marked, and filled by the next proposal."""
        gap = max(0, start - len(self.hidden))
        if gap:
            self.hidden = torch.cat([self.hidden, self.hidden.new_zeros(gap, self.hidden.shape[1])])
            self.hidden_tok += [-1] * gap
        self.hidden = torch.cat([self.hidden[:start], hidden.detach().to(self.hidden.dtype)])
        self.hidden_tok = self.hidden_tok[:start] + [None] * len(hidden)
        if cache_len(self.cache) > start:
            self._crop(start)

    @torch.inference_mode()
    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        if k <= 0 or not self.begin(ids):
            return Proposal()
        try:
            return self._draft(ids, k, shaping, generator)
        finally:
            self.end()

    def _draft(self, ids: list[int], k: int, shaping: Shaping,
               generator: torch.Generator | None) -> Proposal:
        """A chain of up to k tokens (after begin(ids))."""
        return draft_chain(k, lambda drafted: self.dist(list(ids) + drafted, shaping),
                           self.token_id, self.full_q, self.settings.min_confidence, shaping,
                           generator)

    # ---- drafting by context, for the chain above and for TreeDrafter -------------------------
    @torch.inference_mode()
    def begin(self, ids: list[int]) -> bool:
        """Make the head's cache hold the committed entries 0..n-1 (n = len(ids) - 1) and compute
        the state that drafts position n + 1. False when there is nothing to draft from."""
        n = len(ids) - 1  # the last committed position; step 1 needs h_{n-1}
        if n < 1:
            return False
        good = self._check_hidden(ids, n)
        # roll back entries made from other ids (entry t read x_{t+1}) or from replaced states
        valid = min(cache_len(self.cache), common_prefix(self.cached_ids, ids) - 1, n - 1, good)
        valid = max(valid, 0)
        self._crop(valid)
        # step 1: every missing committed entry valid..n-1 (a long prompt's: a chunk a pass,
        # like the target's prefill, so no n x n mask); the last one drafts
        for a in range(valid, n, self.target.prefill_chunk):
            b = min(a + self.target.prefill_chunk, n)
            positions = torch.arange(a, b, device=self.target.device)[None]
            mask = additive(causal_after(a, b - a)).to(self.target.device)
            s = self.head.step(self.hidden[a:b][None], self._embed(ids[a + 1:b + 1]), positions,
                               mask, self.cache)[:, -1:]
        self.cached_ids = list(ids[:n + 1])
        self.rows.see(ids)
        self._root = len(ids)
        self._states = {(): s}  # drafted path -> the head's state after it
        self._in_cache: tuple[int, ...] = ()  # the drafted path whose entries follow entry n-1
        return True

    @torch.inference_mode()
    def dist(self, ctx: list[int], shaping: Shaping) -> torch.Tensor:
        """q after ctx = the committed ids given to begin() + a drafted path (any path, in any
        order: the cache is cropped and replayed to the path's parent when it holds another)."""
        state = self._state(tuple(ctx[self._root:]))
        return draft_dist(self.logits(state[0, -1]).float(), shaping)

    def end(self) -> None:
        """Drop the drafted entries: only committed positions stay cached."""
        self._crop(len(self.cached_ids) - 1)
        self._states, self._in_cache = {}, ()

    def _state(self, path: tuple[int, ...]) -> torch.Tensor:
        if path in self._states:
            return self._states[path]
        parent = self._state(path[:-1])
        self._hold(path[:-1])
        self._states[path] = self._feed(parent, path)
        return self._states[path]

    def _hold(self, path: tuple[int, ...]) -> None:
        """Make the drafted entries in the cache those of `path` (crop, then replay)."""
        n = len(self.cached_ids) - 1
        same = common_prefix(list(self._in_cache), list(path))
        if same < len(self._in_cache):
            self._crop(n + same)
            self._in_cache = self._in_cache[:same]
        for i in range(same, len(path)):
            self._feed(self._states[path[:i]], path[:i + 1])

    def _feed(self, parent: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
        """Step j = len(path) + 1: the parent's state and the path's last token, at position
        n + len(path) - 1, attending to the committed entries and the path's earlier ones."""
        pos = torch.tensor([[len(self.cached_ids) - 2 + len(path)]], device=self.target.device)
        mask = torch.zeros(1, 1, 1, cache_len(self.cache) + 1, device=self.target.device)
        state = self.head.step(parent, self._embed([path[-1]]), pos, mask, self.cache)
        self._in_cache = path
        return state

    def token_id(self, j: int) -> int:
        return self.rows.token_id(j)

    def full_q(self, probs: torch.Tensor) -> torch.Tensor:
        return self.rows.full_q(probs)

    # ---- helpers -------------------------------------------------------------------------------
    def _check_hidden(self, ids: list[int], n: int) -> int:
        """Make hidden states 0..n-1 those of ids; returns the first position that was not
        already right. Observed states belong to the ids of the run that handed them over; a
        state held for other ids, a gap or a missing one is recomputed by the target, reading
        ids[:n] from the start a prefill chunk a pass into a cache of its own (the target's
        covers other ids), like a prefill: no pass builds a context x context mask (only after
        a method switch or a changed conversation)."""
        tok = self.hidden_tok
        for i in range(min(len(tok), len(ids))):
            if tok[i] is None:
                tok[i] = ids[i]
        good = common_prefix(tok, ids)
        if good < n:
            scratch = CachedLM(self.target.model, check=False)
            scratch.prefill_chunk = self.target.prefill_chunk
            fresh = scratch.prefill(ids[:n])[1][good:n].to(self.hidden.dtype)
            self.hidden = torch.cat([self.hidden[:good], fresh])
            self.hidden_tok = list(ids[:n])
        return good

    def _crop(self, keep: int) -> None:
        have = cache_len(self.cache)
        if keep <= 0:
            self.cache = self.head.new_cache()
            self.cached_ids = []
        elif keep < have:
            drop_last(self.cache, have - keep)
            self.cached_ids = self.cached_ids[:keep + 1]

    def _embed(self, tokens: list[int]) -> torch.Tensor:
        return self.target.embed(torch.tensor([tokens], device=self.target.device))

    def cached_positions(self) -> int:
        """How many committed positions the head's cache holds (for tests and display)."""
        return cache_len(self.cache)
