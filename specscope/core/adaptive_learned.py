"""`--draft-len learned`: each step's length from H-RAD's predictor (core/hrad.py).

A length rule the engine asks before every step, like AdaptiveLength (core/adaptive.py), with
one more input: `see(hidden, token)`, the target's hidden state at the last position it has
verified and the token committed after it (the engine hands them over after the prompt is read
and after every verification). The predictor's outcome:

    stop      no draft: a plain target step
    explicit  a length of its own
    implicit  up to `max_len`, ended by the drafter's confidence cut-off, which the cost rule
              sets from the measured costs (a drafted token is worth drafting only while its
              path's confidence exceeds t_draft / t_target); before any target pass of the
              session is measured there is no cut-off yet, so up to `start`

The cost rule runs inside it only to measure those costs (observe); its lengths are not used.
Before anything is seen (a context the target's cache already held), the step drafts `start`.

Exactness: the length depends only on committed tokens and on the target's hidden states at
committed positions, never on the target's random draws of the step it sizes, so the proposal
is still drawn from the drafter's q alone and the verifier keeps the target's law.
"""
from __future__ import annotations

from collections import Counter

import torch

from specscope.core.adaptive import MAX_AUTO_LEN, AdaptiveLength
from specscope.core.hrad import HradArtifact, decide


class LearnedLength:
    rule = "learned"
    wants_features = True

    def __init__(self, artifact: HradArtifact, start: int = 4, max_len: int = MAX_AUTO_LEN,
                 verify_curve: dict[int, float] | None = None,
                 draft_ratio: float | None = None) -> None:
        self.artifact = artifact
        self.start = max(1, min(start, max_len))
        self.max_len = max_len
        self.cost = AdaptiveLength(self.start, "cost", max_len, verify_curve, draft_ratio)
        self.features: tuple[torch.Tensor, int] | None = None
        self.mode = "explicit"
        self.decisions: Counter[str] = Counter()  # outcomes so far (stop / explicit / implicit)

    def start_run(self, ratio: float, target_prefill_s: float, budget: int) -> None:
        self.cost.start_run(ratio, target_prefill_s, budget)

    def see(self, hidden: torch.Tensor | None, token: int) -> None:
        """The target's hidden state [d] that predicted `token`, the last committed token."""
        ok = hidden is not None and hidden.numel() and bool(torch.isfinite(hidden).all())
        self.features = (hidden.detach(), int(token)) if ok else None

    def next_length(self) -> int:
        if self.features is None:
            self.mode = "explicit"
            return self.start
        self.mode, k = decide(self.artifact.probs(*self.features), self.max_len)
        self.decisions[self.mode] += 1
        if self.mode == "implicit" and not self.cost.verify_samples:
            return self.start  # no cut-off before a target pass is measured: `start` at most
        return k

    @property
    def min_confidence(self) -> float:
        return self.cost.min_confidence if self.mode == "implicit" else 0.0

    def observe(self, *args, **kwargs) -> None:
        """What the engine reports after a step, as AdaptiveLength.observe takes it (whatever
        it grows: e.g. the overlapped drafter's `reused`): the costs are the cost rule's."""
        self.cost.observe(*args, **kwargs)
