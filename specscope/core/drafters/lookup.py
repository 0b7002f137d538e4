"""Prompt lookup (n-gram) drafting: no model, just copying.

Match the last n committed tokens against earlier ids (prompt + text so far), longest n first
(max_ngram down to min_ngram), and propose the up-to-k tokens that followed the most recent
earlier occurrence. Proposals are deterministic, so q is one-hot (None) and the output stays
exact under both greedy verification and rejection sampling.

Defaults: n from 3 down to 1, as the original prompt-lookup-decoding (transformers tries 2..1).
Longer n-grams win when they match, and 1-grams keep proposing where nothing longer matches: a
verification pass of a few more tokens costs little more than one of a single token (decoding is
memory-bound), so the extra, often wrong, 1-gram proposals are nearly free, and where the answer
copies its prompt (summaries) they are accepted often enough to pay. The most recent
occurrence wins over the first one: code and chats repeat locally (a name just defined, the
line above), so recent text predicts better.
"""
from __future__ import annotations

import torch

from specscope.core.drafters.base import DrafterBase, Proposal
from specscope.core.sampling import Shaping


def find_continuation(ids: list[int], k: int, max_ngram: int = 3, min_ngram: int = 1,
                      overlap: bool = False) -> list[int]:
    """Up to k tokens that followed the most recent earlier occurrence of the longest suffix
    n-gram of `ids` (max_ngram >= n >= min_ngram); [] when nothing matches. The continuation
    stops at the end of the text, or with `overlap` goes on copying what it copied (LZ77's
    overlapping copy): in a repeated run or period, such as "5 5 5" or "ab ab ab", the latest
    occurrence sits just before the end, and the run is what comes next."""
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
                out = ids[end + 1:end + 1 + k]
                while overlap and len(out) < k:  # ids + out, read on from end + 1
                    out.append(out[end + 1 + len(out) - len(ids)])
                return out
    return []


class LookupDrafter(DrafterBase):
    name = "lookup"

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}..{max_ngram}")
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        tokens = find_continuation(ids, k, self.max_ngram, self.min_ngram)
        return Proposal(tokens=tokens, parents=list(range(-1, len(tokens) - 1)),
                        q_token=[None] * len(tokens), q=None)
