"""Draft & Verify (Zhang et al. 2023): the target drafts for itself with some layers skipped.

`SkipLM` runs the target's embeddings, its kept decoder layers, final norm and head, with a KV
cache of its own (the target's CachedLM cache is untouched). Skipped layers never write to that
cache, so its layer 0 may stay empty: positions are passed explicitly and the causal mask is built
here instead of being derived from the cache's length. Works for the Llama/Qwen2 family
(model.model.{embed_tokens, layers, norm, rotary_emb}). The draft is only a proposal, so any
approximation here (e.g. sliding windows are ignored) cannot change the verified output.

Drafting stops early when the draft's top probability falls below a threshold gamma, adapted
after every step from the acceptance seen (the paper's rule): the smoothed acceptance rate below
the target alpha raises gamma (draft less, more carefully), above it lowers gamma.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from transformers import DynamicCache

from specscope.core.drafters.base import DrafterBase, Proposal
from specscope.core.drafters.model import draft_chain, draft_dist
from specscope.core.errors import SpecScopeError
from specscope.core.lm import CachedLM, read_in_chunks, reset_on_failure, sync_cache, with_cache
from specscope.core.quant import weight_count
from specscope.core.sampling import Shaping
from specscope.core.window import cache_bytes


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    base = model.base_model
    if not all(hasattr(base, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
        raise SpecScopeError(f"layer skipping needs a Llama/Qwen2-style model, not {type(model).__name__}")
    return base.layers


def default_skip(n_layers: int) -> list[int]:
    """Every other layer strictly inside the middle half: for 28 layers 8, 10, ..., 18 (6 of 28).

    The first and last layers shape the hidden state most (skipping them spoils the draft), the
    middle ones least: on the embedded target this set drafted better than every other layer
    of the whole stack or a slightly wider middle. `specscope layerskip-search` does better per
    model; this is what `--method layerskip` uses until a search has run."""
    lo, hi = n_layers // 4, n_layers - n_layers // 4
    skip = list(range(lo + 1, hi - 1, 2))
    return skip or ([n_layers // 2] if n_layers > 2 else [])


class SkipLM:
    """The target with `skip` layers left out, its own KV cache synced to ids by common prefix."""

    def __init__(self, model: torch.nn.Module, skip: list[int]) -> None:
        self.model = model
        self.base = model.base_model
        n = len(decoder_layers(model))
        if any(not 0 <= i < n for i in skip):
            raise ValueError(f"skip layers must lie in 0..{n - 1}, got {sorted(skip)}")
        self.skip = sorted(set(skip))
        self.kept = [i for i in range(n) if i not in self.skip]
        self.device = next(model.parameters()).device
        self.ids: list[int] = []
        self.cache = DynamicCache()  # full layers, created lazily; skipped ones stay empty

    def read_params(self) -> int:
        """Weights read per drafted token: kept layers, final norm and the full head."""
        head = self.model.get_output_embeddings()  # in/out features: also right when quantized
        layers = sum(weight_count(self.base.layers[i]) for i in self.kept)
        return layers + sum(p.numel() for p in self.base.norm.parameters()) + head.in_features * head.out_features

    def reset(self) -> None:
        self.ids = []
        self.cache = DynamicCache()

    @torch.inference_mode()
    def forward(self, ids: list[int], n_last: int = 1) -> torch.Tensor:
        """Final hidden states [n_last, hidden] of the last n_last positions (CachedLM's contract)."""
        keep = sync_cache(self, ids, n_last)
        new = ids[keep:]
        h = self.base.embed_tokens(torch.tensor([new], device=self.device))
        positions = torch.arange(keep, len(ids), device=self.device).unsqueeze(0)
        rope = self.base.rotary_emb(h, positions)
        mask = _causal_mask(keep, len(new), h.dtype, h.device)
        with reset_on_failure(self):
            for i in self.kept:
                h = self.base.layers[i](h, attention_mask=mask, position_ids=positions,
                                        position_embeddings=rope, use_cache=True,
                                        **with_cache(self.base.layers[i], self.cache))
                h = h[0] if isinstance(h, tuple) else h
        self.ids = list(ids)
        return self.base.norm(h)[0, len(new) - n_last:]


def _causal_mask(past: int, q: int, dtype: torch.dtype, device) -> torch.Tensor | None:
    """Additive [1, 1, q, past + q] mask (query j sees keys up to past + j); None for one query."""
    if q <= 1:
        return None
    rows = torch.arange(q, device=device)[:, None] + past
    cols = torch.arange(past + q, device=device)[None, :]
    mask = torch.zeros(q, past + q, dtype=dtype, device=device)
    return mask.masked_fill(cols > rows, torch.finfo(dtype).min)[None, None]


@dataclass
class ExitRule:
    """Adaptive draft exiting: stop when the draft's top probability < gamma."""

    gamma: float = 0.6  # starting threshold
    alpha: float = 0.8  # acceptance rate we aim for
    epsilon: float = 0.02  # step of one adjustment
    beta1: float = 0.5  # smoothing of the acceptance rate
    beta2: float = 0.5  # smoothing of gamma: gamma moves by (1 - beta2) * epsilon a step
    low: float = 0.05  # gamma stays within [low, high]
    high: float = 0.95
    acceptance: float = 0.8  # smoothed acceptance rate seen so far

    def update(self, drafted: int, accepted: int) -> None:
        if drafted == 0:
            return
        self.acceptance = self.beta1 * self.acceptance + (1 - self.beta1) * accepted / drafted
        step = self.epsilon if self.acceptance <= self.alpha else -self.epsilon
        gamma = self.beta2 * self.gamma + (1 - self.beta2) * (self.gamma + step)
        self.gamma = min(self.high, max(self.low, gamma))


class LayerSkipDrafter(DrafterBase):
    name = "layerskip"

    def __init__(self, target: CachedLM, skip: list[int], rule: ExitRule | None = None,
                 adaptive: bool = True) -> None:
        self.target = target
        self.lm = SkipLM(target.model, skip)
        self.rule = rule or ExitRule()
        self._rule0 = replace(self.rule)  # the rule's starting state, for reset()
        self.adaptive = adaptive  # False: always draft k tokens (tests, searches)

    @property
    def skip(self) -> list[int]:
        return self.lm.skip

    def stats(self) -> dict[str, float]:
        """gamma (the current exit threshold), smoothed acceptance, layers skipped of all."""
        n = len(self.lm.skip) + len(self.lm.kept)
        return {"gamma": self.rule.gamma, "acceptance": self.rule.acceptance,
                "skipped_layers": len(self.lm.skip), "layers": n}

    def read_params(self) -> int:
        return self.lm.read_params()

    def kv_bytes(self) -> int:
        """Its own cache of the kept layers. The draft window does not apply: this drafter is
        the target itself, whose full cache verification needs anyway."""
        return cache_bytes(self.lm.cache)

    def reset(self) -> None:
        """An empty draft cache and a fresh exit rule: no run inherits another's threshold."""
        self.lm.reset()
        self.rule = replace(self._rule0)

    def prefill(self, ids: list[int]):
        return read_in_chunks(self.lm, ids, self.target.prefill_chunk)

    def propose(self, ids: list[int], k: int, shaping: Shaping,
                generator: torch.Generator | None) -> Proposal:
        def next_probs(drafted: list[int]) -> torch.Tensor:
            return draft_dist(self.target.logits(self.lm.forward(ids + drafted, 1)[-1]), shaping)

        # the full vocabulary: rows are token ids, q is already full
        return draft_chain(k, next_probs, int, lambda probs: probs, self.settings.min_confidence,
                           shaping, generator, self.rule.gamma if self.adaptive else 0.0)

    def feedback(self, ids, proposal, n_accepted) -> None:
        if self.adaptive:
            self.rule.update(len(proposal.tokens), n_accepted)
