"""The parts of a Session whose target is served (docs/remote.md): the drafters run here, the target there.

Methods that need only the target's logits work (ar, draft, tree, lookup, pool, jacobi); those
that read the target's hidden states or weights (layerskip, mtp, mtp-tree) are refused with one
line, as are a quantized target (the server decides its weights) and a trimmed drafter head
(its artifact is checked against the target's weights).
"""
from __future__ import annotations

from dataclasses import replace

from specscope.core.drafters.base import NoDrafter
from specscope.core.drafters.lookup import LookupDrafter
from specscope.core.engine import SpecDecoder
from specscope.core.errors import SpecScopeError
from specscope.core.models import check_head_widths, eos_ids, load_causal_lm, load_tokenizer
from specscope.core.window import WindowedLM
from specscope.profiles import AUTO, Profile
from specscope.remote.connect import connect

HIDDEN_STATE_METHODS = ("layerskip", "mtp", "mtp-tree")


def refuse(method: str):
    def factory():
        raise SpecScopeError(f"{method} drafts from the target's own layers or hidden states, which a "
                             "served target does not expose: use draft, tree, lookup, pool or jacobi")
    return factory


def load_remote(profile: Profile, dtype: str | None, device: str | None, trimmed: str | None,
                progress, model_factories) -> tuple:
    """(profile, decoder, tokenizer, target, drafter_lm) for session.load_session's Session;
    `model_factories` is session.py's table of the methods a draft model drives."""
    dtype = dtype or profile.dtype
    dtype = "float32" if dtype == AUTO else dtype
    profile = replace(profile, dtype=dtype, device=device or profile.device)
    if profile.quant != "none":
        raise SpecScopeError("a served target's weights are the server's: --quant does not apply")
    if trimmed or profile.trimmed:
        raise SpecScopeError("a trimmed drafter head is checked against the target's weights, which "
                             "a served target does not expose")
    source = profile.tokenizer or profile.drafter
    if not source:
        raise SpecScopeError(f"profile '{profile.name}': a served target needs a tokenizer (set "
                             "`tokenizer:` to the served model's, or give a drafter)")
    tokenizer = load_tokenizer(source, progress, dtype)
    target = connect(profile.target, profile.engine, tokenizer, model=profile.model)
    factories = {"ar": NoDrafter, "lookup": LookupDrafter}
    factories.update({m: refuse(m) for m in HIDDEN_STATE_METHODS})
    drafter_lm = None
    if profile.drafter:
        drafter_lm = WindowedLM(load_causal_lm(profile.drafter, dtype, profile.device, progress),
                                check=False, window=profile.draft_window)
        check_head_widths(target.vocab_size, drafter_lm.vocab_size)
        drafter_lm.quantize(profile.draft_quant if profile.draft_quant != AUTO else "none", progress)
        drafter_lm.check_logits()
        factories.update(model_factories(target, drafter_lm))
    decoder = SpecDecoder(target, tokenizer, factories, eos_ids(tokenizer, None, profile.eos_tokens))
    return profile, decoder, tokenizer, target, drafter_lm
