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
default) every other token already in the context: a summary or an answer about a text copies
its names and numbers, which a ranking counted on other answers misses. The head's state stands in
for the target's, so the shared LM head scores any row. The rows are fixed for a whole proposal
(set in begin(), from the committed ids alone); q is zero outside them, so rejection sampling
stays exact.
"""
from __future__ import annotations

import torch

from specscope.core.drafters.base import DrafterBase, DraftSettings, Proposal
from specscope.core.drafters.lookup import find_continuation
from specscope.core.drafters.model import RankedHead, draft_chain, draft_dist, pick
from specscope.core.errors import SpecScopeError
from specscope.core.lm import CachedLM, apply_rows, common_prefix, drop_last
from specscope.core.mtp import MTPArtifact, additive, cache_len, causal_after
from specscope.core.sampling import Shaping
from specscope.core.window import cache_bytes


class MTPDrafter(DrafterBase):
    name = "mtp"
    accepts_vocab_top_k = True
    needs_target_hidden = True

    def __init__(self, target: CachedLM, artifact: MTPArtifact, context_rows: bool = True) -> None:
        self.target = target
        self.head = artifact.head
        self.ranked = RankedHead(target, artifact.ranking, artifact.k)
        self.vocab_top_k = artifact.k
        self.context_rows = context_rows
        self._rank_of = torch.empty_like(artifact.ranking)
        self._rank_of[artifact.ranking] = torch.arange(len(artifact.ranking))
        self.reset()

    # ---- the interface -------------------------------------------------------------------------
    def configure(self, settings: DraftSettings) -> None:
        k = settings.vocab_top_k
        if k is not None and not 1 <= k <= len(self.ranked):
            raise SpecScopeError(f"vocab top-k must be between 1 and {len(self.ranked)}, got {k}")
        self.settings = settings
        self.vocab_top_k = k if k is not None else self.ranked.default_k

    def reset(self) -> None:
        self.hidden = torch.empty(0, self.target.hidden_size, device=self.target.device,
                                  dtype=next(self.head.parameters()).dtype)
        # the token at each hidden position (None: observed, not yet matched to ids; -1: a gap)
        self.hidden_tok: list[int | None] = []
        self.cache = self.head.new_cache()
        self.cached_ids: list[int] = []  # the ids the cache entries were made from (x_0..x_c)
        self._seen_ids: list[int] = []  # context rows: the committed ids they were taken from
        self._seen: dict[int, None] = {}  # their distinct tokens, in order of first appearance
        self._extra = None  # (k, how many seen) -> (extra rows, their ids, all ids)

    def kv_bytes(self) -> int:
        """The head's KV cache and the target hidden states it keeps (both grow with the
        context: the draft window does not apply to this drafter)."""
        return cache_bytes(self.cache) + self.hidden.numel() * self.hidden.element_size()

    def read_params(self) -> int:
        return self.head.param_count() + len(self.row_ids()) * self.target.hidden_size

    # ---- the rows the head drafts over ----------------------------------------------------------
    def _see(self, ids: list[int]) -> None:
        """Context rows: take the tokens of the committed ids (a changed history starts over)."""
        if not self.context_rows:
            return
        same = common_prefix(self._seen_ids, ids)
        if same < len(self._seen_ids):
            self._seen_ids, self._seen, self._extra, same = [], {}, None, 0
        for t in ids[same:]:
            self._seen.setdefault(int(t), None)
        self._seen_ids = list(ids)

    def _extras(self):
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
        return self._extras()[2]

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """The shared LM head over the drafting rows: [..., d] -> [..., rows]."""
        weight, _ = self.ranked.rows(self.vocab_top_k)
        out = apply_rows(states, weight)
        extra, _, _ = self._extras()
        if extra is not None:
            out = torch.cat([out, apply_rows(states, extra)], -1)
        return out

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
        self._see(ids)
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
        return int(self.row_ids()[j])

    def full_q(self, probs: torch.Tensor) -> torch.Tensor:
        ids = self.row_ids()
        full = torch.zeros(self.target.vocab_size, dtype=probs.dtype, device=probs.device)
        return full.index_copy_(0, ids, probs)

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


class MTPTreeDrafter(MTPDrafter):
    """FastMTP's head drafting a tree one level at a time: every node of a level is fed through
    the head in one batched step (one decoder layer over a few rows costs about what one row
    costs: its weights are read once), so a tree of depth k costs about k head steps, however
    wide. In bfloat16 the target verifies a dozen nodes for about the price of two tokens, so a
    wide tree turns the head's runners-up into accepted tokens.

    The shape follows the head's own confidence (EAGLE-2's idea, kept exact for sampling):
      - a node gets one child per rank r < `width` whose chance, path(node) * q_node[r-th best],
        is at least `floor` (and the run's confidence cut-off); the count is decided from
        q_node before its children are drawn, so sampled siblings stay independent draws from
        q_node, as the multi-candidate verifier needs (greedy: the r-th best rows themselves);
      - of each level's new nodes the `expand` likeliest (path(child) = path(node) * q(child))
        are fed to the head for the next level;
      - at most `max_nodes` nodes; the depth is the draft length k.
    The floor is a cost: every node is one more row in the verification pass (about 0.04 of a
    target pass a node on the embedded pair in bfloat16), worth it only when the node is likely
    enough to be accepted. Measured on the bench's 10 prompts, fresh caches each run (greedy,
    `-k auto`, decode tokens/s): floor 0.04: 6.95 (tau 2.27), 0.08: 7.22, 0.15: 7.68 (tau 2.07),
    and in a second run 0.15: 7.50, 0.22: 7.49, 0.30: 7.11 (tau 1.96).

    Each fed node adds one entry to the head's cache, which attends to the committed entries,
    its own ancestors' entries and itself (a tree mask); end() drops them all.

    Copy branch (`copy`, on by default): beside the head's tree, what followed the most recent
    earlier occurrence of the context's last `copy_ngram` tokens (prompt lookup: 3 down to 2),
    up to k tokens, from the root (overlapping copies go on: a repeated run continues). The
    head drafts from one hidden state over a ranking counted on other answers; a summary or an
    answer about a given text copies whole runs of it, which the copy branch proposes at no
    drafting cost (a few more verified nodes; measured: tau 1.74 -> 2.21 on the bench's prompts). Its nodes are
    deterministic (one-hot q), fixed by the committed ids alone, so they are independent of the
    head's draws: tried after the head's siblings, the multi-candidate verifier stays exact.
    Where the head drafted the copied tokens itself, the branch follows the head's nodes (they
    keep their own q) and hangs the rest below them: those nodes' presence depends only on the
    path above them, which verification has already decided when it tries them.
    """

    name = "mtp-tree"

    def __init__(self, target: CachedLM, artifact: MTPArtifact, width: int = 4, expand: int = 4,
                 max_nodes: int = 16, floor: float = 0.15, context_rows: bool = True,
                 copy: bool = True, copy_ngram: tuple[int, int] = (3, 2), copy_len: int = 0) -> None:
        super().__init__(target, artifact, context_rows)
        self.width, self.expand, self.max_nodes, self.floor = width, expand, max_nodes, floor
        self.copy, self.copy_ngram, self.copy_len = copy, copy_ngram, copy_len

    def _draft(self, ids: list[int], k: int, shaping: Shaping,
               generator: torch.Generator | None) -> Proposal:
        """A tree up to k deep (after begin(ids); propose() and end() are the chain's)."""
        n = len(self.cached_ids) - 1  # committed entries 0..n-1 are cached
        cut = max(self.floor, self.settings.min_confidence)
        out = Proposal()
        q_rows: list[torch.Tensor] = []
        path: list[float] = []  # the drafter's chance of reaching each node (product of q)
        entry: dict[int, int] = {}  # fed node -> its entry in the head's cache
        # the level being expanded: (node, its state [d]); -1 is the committed context
        level = [(-1, self._states[()][0, -1])]
        for depth in range(min(k, self.max_nodes)):
            logits = self.logits(torch.stack([s for _, s in level]))
            new: list[int] = []
            for (node, _), row in zip(level, logits):
                probs = draft_dist(row.float(), shaping)
                reach = path[node] if node >= 0 else 1.0
                top = torch.topk(probs, min(self.width, len(probs))).values.tolist()
                # ranks worth a node, decided from q alone (never from the drawn tokens)
                count = sum(1 for r, t in enumerate(top) if r == 0 and depth == 0 or reach * t >= cut)
                for rank in range(min(count, self.max_nodes - len(out.tokens))):
                    j = pick(probs, shaping, generator, rank)
                    out.tokens.append(self.token_id(j))
                    out.parents.append(node)
                    out.q_token.append(float(probs[j]))
                    path.append(reach * float(probs[j]))
                    if not shaping.greedy:
                        q_rows.append(self.full_q(probs))
                    new.append(len(out.tokens) - 1)
            if depth + 1 >= k or len(out.tokens) >= self.max_nodes:
                break
            grow = sorted((c for c in new if path[c] >= cut), key=lambda c: -path[c])[:self.expand]
            if not grow:
                break
            states = self._feed_level(grow, out.parents, out.tokens, entry, n, dict(level))
            level = list(zip(grow, states))
        if self.copy:
            copied = find_continuation(ids, max(k, self.copy_len), *self.copy_ngram, overlap=True)
            q_rows += add_copy_branch(out, copied, shaping.greedy, self.target.vocab_size,
                                      self._states[()].device)
        if q_rows:
            out.q = torch.stack(q_rows)
        return out

    def _feed_level(self, nodes: list[int], parents: list[int], tokens: list[int],
                    entry: dict[int, int], n: int, parent_state: dict[int, torch.Tensor]) -> torch.Tensor:
        """One batched head step over `nodes` (one level): each reads its parent's state and its
        own token at position n + depth, attending to the committed entries, its ancestors'
        entries and itself. Returns their states [len(nodes), d]."""
        dev = self.target.device
        cached = cache_len(self.cache)
        allowed = torch.zeros(len(nodes), cached + len(nodes), dtype=torch.bool)
        allowed[:, :n] = True
        pos = []
        for i, c in enumerate(nodes):
            a, depth = parents[c], 0
            while a >= 0:
                allowed[i, entry[a]] = True
                a, depth = parents[a], depth + 1
            allowed[i, cached + i] = True
            entry[c] = cached + i
            pos.append(n + depth)
        state = torch.stack([parent_state[parents[c]] for c in nodes])[None]
        emb = self._embed([tokens[c] for c in nodes])
        out = self.head.step(state, emb, torch.tensor([pos], device=dev), additive(allowed).to(dev),
                             self.cache)
        return out[0]


def add_copy_branch(out: Proposal, copied: list[int], greedy: bool, vocab: int,
                    device) -> list[torch.Tensor]:
    """Append `copied` to the tree `out` as a chain from the root, following the tree's own
    nodes while they hold the copied tokens (no token is verified twice), the rest as
    deterministic nodes (q_token None). Returns the new nodes' one-hot q rows for a sampled
    proposal's q ([] when greedy)."""
    kids: dict[int, list[int]] = {}
    for i, parent in enumerate(out.parents):
        kids.setdefault(parent, []).append(i)
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
