"""Build a ready-to-run SpecDecoder from a profile: models, tokenizer, drafters, prompt encoding.

Shared by every front end (generate, chat, bench, trim). Imports no front-end library.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from specscope.core.controls import Controls
from specscope.core.drafters.base import NoDrafter
from specscope.core.drafters.layerskip import LayerSkipDrafter
from specscope.core.drafters.lookup import LookupDrafter
from specscope.core.drafters.model import ModelDrafter
from specscope.core.drafters.pool import PoolDrafter
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.embedded import Progress
from specscope.core.engine import SpecDecoder
from specscope.core.errors import SpecScopeError
from specscope.core.layerskip_search import best_known_skip
from specscope.core.lm import CachedLM
from specscope.core.models import check_vocab_match, eos_ids, load_causal_lm, load_tokenizer
from specscope.profiles import Profile

# Drafting methods: name -> one line for help texts.
METHODS = {
    "ar": "plain autoregressive decoding, the baseline",
    "draft": "a small draft model proposes a chain (classic speculative decoding)",
    "tree": "the draft model, with alternatives where it is unsure, verified as one tree",
    "lookup": "prompt lookup: copy what followed the last n-gram earlier in the text (no model)",
    "pool": "Ouroboros: the draft model, extended by whole phrases from a pool of verified text",
    "layerskip": "Draft & Verify: the target drafts for itself with some layers skipped",
}
NEEDS_DRAFTER = {"draft", "tree", "pool"}


@dataclass
class Session:
    profile: Profile
    decoder: SpecDecoder
    tokenizer: object
    target: CachedLM
    drafter_lm: CachedLM | None
    vocab: object | None = None  # a loaded VocabTrim artifact, if any

    def encode(self, messages: list[dict[str, str]] | str) -> list[int]:
        """Token ids for a prompt (a string) or a conversation (a list of role/content dicts)."""
        return encode_prompt(self.tokenizer, messages, self.profile.chat_template,
                             self.profile.system_prompt)

    def controls(self, **overrides) -> Controls:
        return make_controls(self.profile, **overrides)

    def check(self, controls: Controls, prompt_ids: list[int] | None = None) -> None:
        """Refuse settings this session cannot run, before any output is shown."""
        self.decoder.drafter(controls.method)
        if controls.vocab_top_k is not None:
            if self.vocab is None:
                raise SpecScopeError("a drafter vocabulary size needs a trimmed head (--trimmed PATH)")
            if not 1 <= controls.vocab_top_k <= len(self.vocab.ranking):
                raise SpecScopeError(f"vocab top-k must be between 1 and {len(self.vocab.ranking)}, "
                                     f"got {controls.vocab_top_k}")
        if prompt_ids is not None:
            self.decoder.check_prompt(prompt_ids)


def make_controls(profile: Profile, **overrides) -> Controls:
    """Controls from a profile's defaults, with the given (non-None) overrides; validated."""
    c = Controls(
        method="draft" if profile.drafter else "ar",
        draft_len=profile.draft_len,
        temperature=profile.temperature,
        top_p=profile.top_p,
        max_new_tokens=profile.max_new_tokens,
    )
    for key, value in overrides.items():
        if value is not None:
            setattr(c, key, value)
    c.validate()
    return c


def encode_prompt(tokenizer, messages, chat_template: bool, system_prompt: str | None = None) -> list[int]:
    if isinstance(messages, str):
        if not messages.strip():
            raise SpecScopeError("the prompt is empty")
        messages = [{"role": "user", "content": messages}]
    if chat_template and getattr(tokenizer, "chat_template", None):
        if system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system_prompt}] + messages
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                            return_dict=False)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)
    text = "\n".join(m["content"] for m in messages)
    return list(tokenizer(text)["input_ids"])


def load_session(profile: Profile, dtype: str | None = None, device: str | None = None,
                 trimmed: str | None = None, progress: Progress | None = None) -> Session:
    dtype = dtype or profile.dtype
    device = device or profile.device
    profile = replace(profile, dtype=dtype, device=device)
    tokenizer = load_tokenizer(profile.target, progress)
    target_model = load_causal_lm(profile.target, dtype, device, progress)
    target = CachedLM(target_model)
    drafter_lm = None
    factories = {"ar": NoDrafter}
    if profile.drafter:
        draft_tok = load_tokenizer(profile.drafter, progress)
        drafter_lm = CachedLM(load_causal_lm(profile.drafter, dtype, device, progress))
        check_vocab_match(target, drafter_lm, tokenizer, draft_tok)
    vocab = None
    trimmed = trimmed or profile.trimmed
    if trimmed:
        if drafter_lm is None:
            raise SpecScopeError("a trimmed head needs a profile with a drafter")
        from specscope.core.vocab import load_trimmed

        vocab = load_trimmed(trimmed, profile, drafter_lm, target, tokenizer)
    # Quantize after the artifact's fingerprint check, which reads the original head.
    target.quantize(profile.quant)
    if drafter_lm is not None:
        drafter_lm.quantize(profile.draft_quant)
        ranking, k = (None, None) if vocab is None else (vocab.ranking, vocab.k)
        factories["draft"] = lambda: ModelDrafter(drafter_lm, target.vocab_size, ranking, k)
        factories["tree"] = lambda: TreeDrafter(ModelDrafter(drafter_lm, target.vocab_size, ranking, k))
        factories["pool"] = lambda: PoolDrafter(ModelDrafter(drafter_lm, target.vocab_size, ranking, k))
    factories["lookup"] = LookupDrafter
    factories["layerskip"] = lambda: LayerSkipDrafter(target, best_known_skip(target_model))
    decoder = SpecDecoder(target, tokenizer, factories, eos_ids(tokenizer, target_model, profile.eos_tokens))
    return Session(profile, decoder, tokenizer, target, drafter_lm, vocab)
