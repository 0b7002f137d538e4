"""Classic speculative decoding: a small causal LM with the target's tokenizer drafts a chain.

The drafter keeps its own KV cache (CachedLM syncs it to the committed ids, which rolls back
rejected drafts). With a VocabTrim ranking the head matmul covers only the first K ranked rows
(a contiguous slice of a ranked copy of the head, so changing K costs nothing) and ids are mapped
back to the full vocabulary; q is zero outside the kept rows, which rejection sampling handles.
"""
from __future__ import annotations

import torch

from specscope.core.drafters.base import Proposal
from specscope.core.errors import SpecScopeError
from specscope.core.lm import CachedLM
from specscope.core.sampling import Shaping, probs_from_logits, sample


class ModelDrafter:
    name = "draft"

    def __init__(self, lm: CachedLM, target_vocab: int, ranking: torch.Tensor | None = None,
                 default_top_k: int | None = None) -> None:
        self.lm = lm
        self.target_vocab = target_vocab
        self.ranking = ranking  # VocabTrim's full rank order of token ids, or None (full head)
        self.default_top_k = default_top_k
        self.vocab_top_k = default_top_k
        self._ranked_head = None  # the head's rows in rank order (lm.head_rows), sliced per K
        # Stop drafting when the drafter's top probability falls below this (set per step by an
        # adaptive policy; 0 = never). Decided before sampling, so q stays exact.
        self.min_confidence = 0.0

    def set_vocab_top_k(self, k: int | None) -> None:
        if k is not None and self.ranking is None:
            raise SpecScopeError("a drafter vocabulary size needs a trimmed head (--trimmed PATH)")
        if k is not None and not 1 <= k <= len(self.ranking):
            raise SpecScopeError(f"vocab top-k must be between 1 and {len(self.ranking)}, got {k}")
        self.vocab_top_k = k if k is not None else self.default_top_k

    def _head(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(head rows to use, their token ids) for the current vocabulary size."""
        if self.ranking is None or self.vocab_top_k is None:
            return None, None
        if self._ranked_head is None:
            self.ranking = self.ranking.to(self.lm.device)
            self._ranked_head = self.lm.head_rows(self.ranking)
        k = self.vocab_top_k
        return self._ranked_head[:k], self.ranking[:k]

    def read_params(self) -> int:
        rows = None if self.ranking is None or self.vocab_top_k is None else self.vocab_top_k
        return self.lm.read_params(rows)

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        weight, rows = self._head()
        ctx = list(ids)
        out = Proposal()
        qs = []
        for i in range(k):
            logits = self.lm.logits(self.lm.forward(ctx, 1)[-1], weight)
            if shaping.greedy:
                j = int(logits.argmax())
                q_j = float(torch.softmax(logits, -1)[j])
                if i > 0 and q_j < self.min_confidence:
                    break
            else:
                probs = probs_from_logits(logits, shaping)
                if i > 0 and float(probs.max()) < self.min_confidence:
                    break
                j = sample(probs, generator)
                q_j = float(probs[j])
                qs.append(self._to_full_vocab(probs, rows))
            token = j if rows is None else int(rows[j])
            out.tokens.append(token)
            out.parents.append(i - 1)
            out.q_token.append(q_j)
            ctx.append(token)
        if qs:
            out.q = torch.stack(qs)
        return out

    def _to_full_vocab(self, probs: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        if rows is None and probs.shape[-1] == self.target_vocab:
            return probs
        full = torch.zeros(self.target_vocab, dtype=probs.dtype, device=probs.device)
        if rows is None:
            n = min(self.target_vocab, probs.shape[-1])
            full[:n] = probs[:n]
            return full
        return full.index_copy_(0, rows, probs)

    def feedback(self, ids, proposal, n_accepted) -> None:
        pass  # the cache is synced by common prefix at the next propose
