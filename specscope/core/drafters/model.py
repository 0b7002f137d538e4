"""Classic speculative decoding: a small causal LM with the target's tokenizer drafts a chain.

The drafter keeps its own KV cache (CachedLM syncs it to the committed ids, which rolls back
rejected drafts). With a VocabTrim ranking the head matmul covers only the first K ranked rows
(a contiguous slice of a ranked copy of the head, shared by every drafter of the session, so
changing K costs nothing) and ids are mapped back to the full vocabulary; q is zero outside the
kept rows, which rejection sampling handles.

With a WindowedLM (window.py) the drafter's cache is bounded by `DraftSettings.draft_window`:
attention sinks plus the most recent tokens. Every drafter built on ModelDrafter (tree, pool,
jacobi) shares it, since they draft through this class's LM.

`draft_dist` and `pick` are the one draft step every model drafter uses (chain, tree, pool,
layer skipping): logits -> q (shaped like p when sampling) -> a token.
"""
from __future__ import annotations

import torch

from specscope.core.drafters.base import DrafterBase, DraftSettings, Proposal, refuse_overlap
from specscope.core.errors import SpecScopeError
from specscope.core.lm import CachedLM
from specscope.core.models import check_head_widths
from specscope.core.sampling import Shaping, probs_from_logits, sample
from specscope.core.window import WindowedLM, cache_bytes


def draft_dist(logits: torch.Tensor, shaping: Shaping) -> torch.Tensor:
    """q over the drafter's rows: shaped like p when sampling; the plain softmax when greedy
    (only shown, and read for the confidence cut-off)."""
    return torch.softmax(logits.float(), -1) if shaping.greedy else probs_from_logits(logits, shaping)


def pick(probs: torch.Tensor, shaping: Shaping, generator: torch.Generator | None, rank: int = 0) -> int:
    """Greedy: the rank-th most likely row; sampling: a draw from q (rank is ignored: siblings
    are independent draws from the same q, which the multi-candidate verifier expects)."""
    if not shaping.greedy:
        return sample(probs, generator)
    if rank == 0:
        return int(probs.argmax())
    return int(torch.topk(probs, rank + 1).indices[rank])


def draft_chain(k: int, next_probs, token_id, full_q, min_confidence: float, shaping: Shaping,
                generator: torch.Generator | None, gamma: float = 0.0,
                picked: list[int] = ()) -> Proposal:
    """The chain loop of every chain drafter: up to k tokens, each picked from
    next_probs(tokens drafted so far) (probabilities over the drafter's rows; token_id maps a row
    to a token, full_q to a full-vocabulary q). Stops early once the whole draft's confidence
    falls under min_confidence (DraftSettings), or the next token's top probability under
    `gamma` (layer skipping's exit rule); never before the first token, whose pass is paid.
    `picked`: rows already drawn from these same next_probs for the first positions (drafted
    ahead while the target verified, drafters/overlap.py); they stand in for the picks."""
    out = Proposal()
    qs = []
    path = 1.0  # the drafter's confidence in the whole draft so far
    for i in range(k):
        probs = next_probs(out.tokens)
        if min_confidence > 0 or gamma > 0:
            top = float(probs.max())
            path *= top
            if i > 0 and (top < gamma or path < min_confidence):
                break
        j = picked[i] if i < len(picked) else pick(probs, shaping, generator)
        out.tokens.append(token_id(j))
        out.parents.append(i - 1)
        out.q_token.append(float(probs[j]))
        if not shaping.greedy:
            qs.append(full_q(probs))
    if qs:
        out.q = torch.stack(qs)
    return out


class RankedHead:
    """A VocabTrim ranking and the drafter head's rows in that order, built once and shared."""

    def __init__(self, lm: CachedLM, ranking: torch.Tensor, default_k: int | None) -> None:
        self.lm = lm
        self.ranking = ranking.to(lm.device)
        self.default_k = default_k
        self._rows: torch.Tensor | None = None
        self._cuts: dict[int, object] = {}  # k -> rows[:k], the last few k used

    def __len__(self) -> int:
        return len(self.ranking)

    def rows(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(the first k ranked rows of the head, their token ids). The rows are a tensor, or a
        quantized or packed slice (a module); cuts are kept for the last few k, since cutting a
        packed head packs the cut."""
        if self._rows is None:
            self._rows = self.lm.head_rows(self.ranking)
        if k not in self._cuts:
            if len(self._cuts) >= 4:
                self._cuts.pop(next(iter(self._cuts)))
            self._cuts[k] = self._rows[:k]
        return self._cuts[k], self.ranking[:k]


class ModelDrafter(DrafterBase):
    name = "draft"
    accepts_vocab_top_k = True

    def __init__(self, lm: CachedLM, target_vocab: int, ranked: RankedHead | None = None) -> None:
        check_head_widths(target_vocab, lm.vocab_size)
        self.lm = lm
        self.target_vocab = target_vocab
        self.ranked = ranked
        self.vocab_top_k = ranked.default_k if ranked else None

    def configure(self, settings: DraftSettings) -> None:
        refuse_overlap(settings, self.name)
        k = settings.vocab_top_k
        if k is not None and self.ranked is None:
            raise SpecScopeError("a drafter vocabulary size needs a trimmed head (--trimmed PATH)")
        if k is not None and not 1 <= k <= len(self.ranked):
            raise SpecScopeError(f"vocab top-k must be between 1 and {len(self.ranked)}, got {k}")
        if isinstance(self.lm, WindowedLM):
            self.lm.set_window(settings.draft_window)
        elif settings.draft_window:
            raise SpecScopeError("a draft window needs the draft model loaded with a bounded "
                                 "cache (WindowedLM)")
        self.settings = settings
        self.vocab_top_k = k if k is not None else (self.ranked.default_k if self.ranked else None)

    def reset(self) -> None:
        self.lm.reset()

    def prefill(self, ids: list[int]):
        return self.lm.read(ids)

    def kv_bytes(self) -> int:
        return cache_bytes(self.lm.cache)

    def head_rows(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(head rows to draft over, their token ids) for the current vocabulary size; (None,
        None) for the full head."""
        if self.ranked is None or self.vocab_top_k is None:
            return None, None
        return self.ranked.rows(self.vocab_top_k)

    def read_params(self) -> int:
        _, ids = self.head_rows()
        return self.lm.read_params(None if ids is None else len(ids))

    def begin(self, ids: list[int]) -> bool:
        """Before drafting after ids by context (TreeDrafter): nothing to prepare, the cache
        follows whatever context dist() is given."""
        return True

    def end(self) -> None:
        pass

    def dist(self, ctx: list[int], shaping: Shaping) -> torch.Tensor:
        """q after ctx, over the current rows (see draft_dist)."""
        weight, _ = self.head_rows()
        return draft_dist(self.lm.logits(self.lm.forward(ctx, 1)[-1], weight), shaping)

    def token_id(self, j: int) -> int:
        """The vocabulary id of row j of the current head."""
        _, ids = self.head_rows()
        return j if ids is None else int(ids[j])

    def full_q(self, probs: torch.Tensor) -> torch.Tensor:
        """A q over the current rows as a full-vocabulary row (zero outside the kept rows)."""
        _, ids = self.head_rows()
        if ids is None and probs.shape[-1] == self.target_vocab:
            return probs
        full = torch.zeros(self.target_vocab, dtype=probs.dtype, device=probs.device)
        if ids is None:  # a narrower head (never wider: checked at construction)
            full[:probs.shape[-1]] = probs
            return full
        return full.index_copy_(0, ids, probs)

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        return draft_chain(k, lambda drafted: self.dist(list(ids) + drafted, shaping), self.token_id,
                           self.full_q, self.settings.min_confidence, shaping, generator)
