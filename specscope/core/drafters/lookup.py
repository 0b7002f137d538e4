"""Prompt lookup (n-gram) drafting: no model, just copying.

Match the last n committed tokens against earlier ids (prompt + text so far), longest n first
(max_ngram down to min_ngram), and propose the up-to-k tokens that followed the most recent
earlier occurrence. Proposals are deterministic, so q is one-hot (None) and the output stays
exact under both greedy verification and rejection sampling.

Defaults: n from 3 down to 2. transformers' prompt lookup tries 2..1 and the original
prompt-lookup-decoding 3..1; we drop 1-grams because a single-token match (a space, a newline,
a bracket) is mostly noise, and every proposed token widens the target's verification pass,
which is not free on a CPU. The most recent occurrence wins over the first one: code and chats
repeat locally (a variable name just defined, the line above), so recent text predicts better.
"""
from __future__ import annotations

import torch

from specscope.core.drafters.base import Proposal
from specscope.core.sampling import Shaping


def find_continuation(ids: list[int], k: int, max_ngram: int = 3, min_ngram: int = 2) -> list[int]:
    """Up to k tokens that followed the most recent earlier occurrence of the longest suffix
    n-gram of `ids` (max_ngram >= n >= min_ngram); [] when nothing matches."""
    if k <= 0:
        return []
    for n in range(min(max_ngram, len(ids) - 1), min_ngram - 1, -1):
        if n <= 0:
            break
        pattern = ids[-n:]
        last = pattern[-1]
        # Scan right to left; start i must leave at least one token after the match (i + n < len).
        for end in range(len(ids) - 2, n - 2, -1):  # end: index of the match's last token
            if ids[end] == last and ids[end - n + 1:end + 1] == pattern:
                return ids[end + 1:end + 1 + k]
    return []


class LookupDrafter:
    name = "lookup"

    def __init__(self, max_ngram: int = 3, min_ngram: int = 2) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}..{max_ngram}")
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram

    def read_params(self) -> int:
        return 0

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        tokens = find_continuation(ids, k, self.max_ngram, self.min_ngram)
        return Proposal(tokens=tokens, parents=list(range(-1, len(tokens) - 1)),
                        q_token=[None] * len(tokens), q=None)

    def feedback(self, ids, proposal, n_accepted) -> None:
        pass  # stateless: the committed ids are the whole memory
