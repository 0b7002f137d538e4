"""Classic speculative decoding: a small causal LM with the target's tokenizer drafts a chain.

The drafter keeps its own KV cache (CachedLM syncs it to the committed ids, which rolls back
rejected drafts). With a trimmed vocabulary (VocabTrim) the head matmul covers only the kept rows
and ids are mapped back to the full vocabulary.
"""
from __future__ import annotations

import torch

from specscope.core.drafters.base import Proposal
from specscope.core.lm import CachedLM
from specscope.core.sampling import Shaping, probs_from_logits, sample


class ModelDrafter:
    name = "draft"

    def __init__(self, lm: CachedLM, target_vocab: int, kept_ids: torch.Tensor | None = None,
                 vocab_top_k: int | None = None) -> None:
        self.lm = lm
        self.target_vocab = target_vocab
        self.kept_ids = kept_ids  # rank-ordered ids of a VocabTrim ranking, or None (full head)
        self.vocab_top_k = vocab_top_k

    def set_vocab_top_k(self, k: int | None) -> None:
        self.vocab_top_k = k

    @property
    def rows(self) -> torch.Tensor | None:
        if self.kept_ids is None:
            return None
        k = self.vocab_top_k or len(self.kept_ids)
        return self.kept_ids[: min(k, len(self.kept_ids))]

    def read_params(self) -> int:
        rows = self.rows
        return self.lm.read_params(None if rows is None else len(rows))

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        rows = self.rows
        ctx = list(ids)
        out = Proposal()
        qs = []
        for i in range(k):
            logits = self.lm.logits(self.lm.forward(ctx, 1)[-1], rows)
            if shaping.greedy:
                j = int(logits.argmax())
                q_j = float(torch.softmax(logits, -1)[j])
            else:
                probs = probs_from_logits(logits, shaping)
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
        if rows is None:
            if probs.shape[-1] == self.target_vocab:
                return probs
            full = torch.zeros(self.target_vocab, dtype=probs.dtype, device=probs.device)
            n = min(self.target_vocab, probs.shape[-1])
            full[:n] = probs[:n]
            return full
        full = torch.zeros(self.target_vocab, dtype=probs.dtype, device=probs.device)
        return full.index_copy_(0, rows, probs)

    def feedback(self, ids, proposal, n_accepted) -> None:
        pass  # the cache is synced by common prefix at the next propose
