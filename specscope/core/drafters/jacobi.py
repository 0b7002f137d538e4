"""Jacobi block refinement: Speculative Diffusion Decoding's idea, training-free.

SDD drafts a whole block with a discrete diffusion model in a few parallel denoising passes, so
the drafting cost stops growing with the block length. Without a diffusion LM for this tokenizer
the draft model can play the part: a causal model run once over [x_last, g_1 .. g_{k-1}]
re-predicts every position of a block of guesses g_1 .. g_k in parallel. Replacing each g_i by
the model's argmax at its position and repeating is Jacobi iteration on the greedy recurrence
g_i = argmax q(. | context, g_<i): after T passes g_1 .. g_T equal the greedy chain exactly, the
rest are the model's best guesses so far, and a pass that changes nothing is the fixed point,
the whole greedy chain (the refinement stops there). On memory-bound hardware a pass over k
tokens costs about one pass over one token, so a k-token block costs T passes instead of k.

  initial block  prompt lookup (the tokens that followed the last n-gram earlier in the text),
                 else what the previous block had past its rejected token, padded by repeating
                 the last guess (the first pass fixes g_1 whatever the guess);
  each pass      the draft model over [x_last, g_1 .. g_{k-1}] with its KV cache over the
                 committed ids reused; guesses known to come back unchanged (a prefix that
                 equals the previous pass's input) are not fed again;
  passes         --refine-steps T, or auto (refine_steps.py: measured costs, acceptance).

Exactness: the block is a deterministic function of what the drafter saw before this step's
verification (the committed ids, its earlier blocks), so the law it was drawn from is one-hot at
each proposed token (Proposal.q None). Rejection sampling with a one-hot q accepts g with
probability min(1, p(g)/1) = p(g) and otherwise samples from (p - onehot_g)+ renormalised, i.e. p
without g: the emitted token has law p(g) on g and (1 - p(g)) p(x) / (1 - p(g)) = p(x) elsewhere,
the target's, whatever g was. (Passing the drafter's softmax as q instead would be wrong: the
token was not sampled from it; the tests catch that.) Greedy verification is exact for any draft.
A VocabTrim head keeps all this: the argmax runs over the kept rows (ModelDrafter.head_rows).

BlockRefiner is the seam for a real diffusion drafter: a masked diffusion LM sharing the target's
tokenizer would implement `refine` as one denoising pass over the block.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

import torch

from specscope.core.drafters.base import DrafterBase, DraftSettings, Proposal
from specscope.core.drafters.lookup import find_continuation
from specscope.core.drafters.model import ModelDrafter
from specscope.core.lm import common_prefix
from specscope.core.refine_steps import RefineSteps
from specscope.core.sampling import Shaping

MAX_BLOCK = 16  # longer asks are cut to this (the TUI lets k go to 32)


class BlockRefiner(Protocol):
    """One parallel pass over a block of guesses for the positions after `ids`.

    `keep`: how many leading guesses are known to come back unchanged (the refiner may skip their
    positions). Returns the refined block (same length) and, per position, the refiner's
    probability of its token (for display; only positions >= keep need to be fresh).
    """

    def refine(self, ids: list[int], block: list[int], keep: int) -> tuple[list[int], list[float]]:
        ...

    def read_params(self) -> int:
        """Weights read per pass."""
        ...

    def configure(self, settings: DraftSettings) -> None:
        """The run's drafter settings (a vocabulary size for a trimmed head, ...)."""
        ...

    def reset(self) -> None:
        """Forget per-run state (KV caches)."""
        ...

    def prefill(self, ids: list[int]) -> Iterator[tuple[int, int]]:
        """Read a long unread context ahead of the passes (Drafter.prefill)."""
        ...

    def kv_bytes(self) -> int:
        """Bytes held by the refiner's KV cache."""
        ...


class CausalRefiner:
    """A causal LM as a block refiner (Jacobi): position i predicts g_i from context + g_<i."""

    def __init__(self, model: ModelDrafter) -> None:
        self.model = model
        self.lm = model.lm

    def configure(self, settings: DraftSettings) -> None:
        self.model.configure(settings)

    def reset(self) -> None:
        self.model.reset()

    def prefill(self, ids: list[int]) -> Iterator[tuple[int, int]]:
        return self.model.prefill(ids)

    def read_params(self) -> int:
        return self.model.read_params()

    def kv_bytes(self) -> int:
        return self.model.kv_bytes()

    def refine(self, ids: list[int], block: list[int], keep: int) -> tuple[list[int], list[float]]:
        keep = min(keep, len(block) - 1)
        weight, rows = self.model.head_rows()
        # Hidden states of x_last, g_1 .. g_{k-1}: the last len(block) - keep of them are fresh;
        # the cache crops itself back to the committed ids + the unchanged guesses.
        hidden = self.lm.forward(ids + block[:-1], len(block) - keep)
        logits = self.lm.logits(hidden, weight)
        top, j = torch.softmax(logits, -1).max(-1)
        fresh = (j if rows is None else rows[j]).tolist()
        return block[:keep] + fresh, [float("nan")] * keep + top.tolist()


class JacobiDrafter(DrafterBase):
    name = "jacobi"
    accepts_vocab_top_k = True  # passed on to the refiner, which refuses what it cannot honour

    def __init__(self, refiner: BlockRefiner, refine_steps: int | None = None,
                 max_ngram: int = 3) -> None:
        self.refiner = refiner
        self.refine_steps = refine_steps  # passes per block; None: auto (RefineSteps)
        self.max_ngram = max_ngram
        self.policy = RefineSteps(MAX_BLOCK)
        self.passes = 0  # refinement passes run, over all blocks
        self.drafted = 0  # tokens proposed
        self.fixed_points = 0  # blocks that converged (all k positions exact)
        self._proposal: Proposal | None = None
        self._exact = 0  # leading positions of the last block known exact
        self._proposed_at = 0.0
        self._leftover: tuple[list[int], list[int]] = ([], [])  # (ids it follows, guesses)

    def stats(self) -> dict[str, float]:
        return {"passes": self.passes, "drafted": self.drafted, "fixed_points": self.fixed_points,
                "passes_per_token": self.passes / self.drafted if self.drafted else 0.0}

    def reset(self) -> None:
        """Forget per-run state: the draft model's cache, the leftover guesses, the auto policy."""
        self.refiner.reset()
        self.policy = RefineSteps(MAX_BLOCK)
        self._proposal = None
        self._leftover = ([], [])

    def prefill(self, ids: list[int]) -> Iterator[tuple[int, int]]:
        return self.refiner.prefill(ids)

    def configure(self, settings: DraftSettings) -> None:
        """Passes per block (None: auto); the vocabulary size goes to the refiner. The confidence
        cut-off is not used: the block's length is k, refinement decides only its quality."""
        self.refiner.configure(settings)
        self.settings = settings
        self.refine_steps = settings.refine_steps

    def read_params(self) -> int:
        """Weights read per drafted token: T passes for a block of k, so about T/k of a pass;
        one pass per token is the conservative figure MBSU's r uses for the other drafters."""
        return self.refiner.read_params()

    def kv_bytes(self) -> int:
        return self.refiner.kv_bytes()

    def initial_block(self, ids: list[int], k: int) -> list[int]:
        guess = find_continuation(ids, k, self.max_ngram, 1)
        after, leftover = self._leftover
        if not guess and leftover and after == ids:
            guess = leftover[:k]
        pad = guess[-1] if guess else ids[-1]
        return guess + [pad] * (k - len(guess))

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        """The refined block; the same under greedy and sampling runs (q one-hot)."""
        k = min(k, MAX_BLOCK)
        steps = self.refine_steps or self.policy.choose(k)
        t0 = time.perf_counter()
        blocks = [self.initial_block(ids, k)]
        probs: list[float] = []
        exact, keep = 0, 0
        while exact < k and len(blocks) - 1 < steps:
            block, fresh = self.refiner.refine(ids, blocks[-1], keep)
            probs = probs[:keep] + fresh[keep:]
            exact += 1
            # Guesses equal to this pass's input come back unchanged from the next pass, and
            # the token after them too; when that covers the block, it is the fixed point.
            keep = common_prefix(blocks[-1][:-1], block[:-1]) + 1
            blocks.append(block)
            if keep >= k:
                exact = k
                self.fixed_points += 1
        passes = len(blocks) - 1
        if passes:
            self.policy.observe_costs((time.perf_counter() - t0) / passes, None)
        tokens = blocks[-1]
        self.passes += passes
        self.drafted += len(tokens)
        self._exact = exact
        self._proposal = Proposal(tokens=tokens, parents=list(range(-1, len(tokens) - 1)),
                                  q_token=probs, q=None, refinement=blocks)
        self._proposed_at = time.perf_counter()
        return self._proposal

    def feedback(self, ids: list[int], proposal: Proposal, n_accepted: int) -> None:
        if proposal is not self._proposal:  # the engine skipped propose (k == 0)
            self._leftover = ([], [])
            return
        self.policy.observe_costs(None, time.perf_counter() - self._proposed_at)
        self.policy.observe(len(proposal.tokens), self._exact, n_accepted)
        # Past the rejected token the block's guesses were made after a wrong token; they are
        # still the best cheap guess for the next block when lookup finds nothing.
        self._leftover = (list(ids), list(proposal.tokens[n_accepted + 1:]))
