"""FastMTP's head drafting a tree a level at a time (`--method mtp-tree`), with a copy branch
(drafters/copy_branch.py) beside the head's nodes."""
from __future__ import annotations

import torch

from specscope.core.drafters.base import Proposal
from specscope.core.drafters.copy_branch import add_copy_branch
from specscope.core.drafters.lookup import find_continuation
from specscope.core.drafters.model import draft_dist, pick
from specscope.core.drafters.mtp import MTPDrafter
from specscope.core.lm import CachedLM
from specscope.core.mtp import MTPArtifact, additive, cache_len
from specscope.core.sampling import Shaping
from specscope.core.tree import ancestors


class MTPTreeDrafter(MTPDrafter):
    """FastMTP's head drafting a tree one level at a time: every node of a level is fed through
    the head in one batched step (one decoder layer over a few rows costs about what one row
    costs: its weights are read once), so a tree of depth k costs about k head steps, however
    wide. The target verifies a dozen nodes for not much more than a chain of a few (a pass is
    memory-bound), so a wide tree turns the head's runners-up into accepted tokens.

    The shape follows the head's own confidence (EAGLE-2's idea, kept exact for sampling):
      - a node gets one child per rank r < `width` whose chance, path(node) * q_node[r-th best],
        is at least `floor` (and the run's confidence cut-off); the count is decided from
        q_node before its children are drawn, so sampled siblings stay independent draws from
        q_node, as the multi-candidate verifier needs (greedy: the r-th best rows themselves);
      - of each level's new nodes the `expand` likeliest (path(child) = path(node) * q(child))
        are fed to the head for the next level;
      - at most `max_nodes` nodes; the depth is the draft length k.
    The floor is a cost: every node is one more row in the verification pass, worth it only
    when the node is likely enough to be accepted; its default was chosen on the bench's
    prompts (docs/measurements: a lower floor adds nodes that are rarely accepted, a higher one
    drops accepted ones).

    Each fed node adds one entry to the head's cache, which attends to the committed entries,
    its own ancestors' entries and itself (a tree mask); end() drops them all.

    Copy branch (`copy`, on by default): beside the head's tree, what followed the most recent
    earlier occurrence of the context's last `copy_ngram` tokens (prompt lookup: 3 down to 2),
    up to k tokens, from the root (overlapping copies go on: a repeated run continues). The
    head drafts from one hidden state over a ranking counted on other answers; a summary or an
    answer about a given text copies whole runs of it, which the copy branch proposes at no
    drafting cost (a few more verified nodes, often accepted on such prompts). Its nodes are
    deterministic (one-hot q), fixed by the committed ids alone, so they are independent of the
    head's draws: tried after the head's siblings, the multi-candidate verifier stays exact.
    Where the head drafted the copied tokens itself, the branch follows the head's nodes (they
    keep their own q) and hangs the rest below them: those nodes' presence depends only on the
    path above them, which verification has already decided when it tries them.
    """

    name = "mtp-tree"

    def __init__(self, target: CachedLM, artifact: MTPArtifact, width: int = 4, expand: int = 4,
                 max_nodes: int = 16, floor: float = 0.15, context_rows: bool = True,
                 copy: bool = True, copy_ngram: tuple[int, int] = (3, 2), copy_len: int = 0,
                 scripts=None) -> None:
        super().__init__(target, artifact, context_rows, scripts)
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
            above = ancestors(parents, c)
            for a in above:
                allowed[i, entry[a]] = True
            allowed[i, cached + i] = True
            entry[c] = cached + i
            pos.append(n + len(above))
        state = torch.stack([parent_state[parents[c]] for c in nodes])[None]
        emb = self._embed([tokens[c] for c in nodes])
        out = self.head.step(state, emb, torch.tensor([pos], device=dev), additive(allowed).to(dev),
                             self.cache)
        return out[0]
