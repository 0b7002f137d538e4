"""Jacobi block refinement: converges to the greedy chain, keeps the target's output exactly
(greedy and sampling), and leaves the drafter's cache as a fresh pass would."""
import pytest
import torch

from specscope.core.controls import Controls
from specscope.core.drafters.jacobi import CausalRefiner, JacobiDrafter
from specscope.core.drafters.base import DraftSettings
from specscope.core.drafters.model import ModelDrafter, RankedHead
from specscope.core.events import Drafted, Verified
from specscope.core.lm import CachedLM
from specscope.core.sampling import Shaping
from specscope.core.tiny import tiny_model
from tests.core.helpers import model_greedy, run, tiny_decoder
from tests.core.test_drafter_common import assert_law, one_thread  # noqa: F401

GREEDY = Shaping(0.0)


def jacobis(target, draft):
    """jacobi: the tiny pair's 1-layer drafter (often rejected); jacobi-self: the target drafts
    for itself, so every exact position is accepted and drafts go deep."""
    own = CachedLM(target.model)
    return {
        "jacobi": lambda: JacobiDrafter(CausalRefiner(ModelDrafter(draft, target.vocab_size))),
        "jacobi-self": lambda: JacobiDrafter(CausalRefiner(ModelDrafter(own, target.vocab_size))),
    }


PROMPTS = [[5, 17, 230], [9, 9, 9, 9], [1, 2, 3, 4, 1, 2, 3], list(range(40, 60))]


@pytest.mark.parametrize("ranked", [False, True])
def test_after_t_passes_the_first_t_positions_are_the_greedy_chain(ranked):
    """The first T positions after T passes equal ModelDrafter's autoregressive draft, every
    intermediate block agrees on its converged prefix, and stopping early means a fixed point."""
    draft = CachedLM(tiny_model("draft", 3))
    ranking = torch.randperm(1024, generator=torch.Generator().manual_seed(0)) if ranked else None
    head = RankedHead(draft, ranking, 200) if ranked else None
    chain_drafter = ModelDrafter(draft, 1024, head)
    jacobi = JacobiDrafter(CausalRefiner(ModelDrafter(draft, 1024, head)))
    early = 0
    for prompt in PROMPTS:
        for k in (1, 5, 12):
            chain = chain_drafter.propose(prompt, k, GREEDY, None).tokens
            for steps in range(1, k + 1):
                jacobi.configure(DraftSettings(refine_steps=steps))
                p = jacobi.propose(prompt, k, GREEDY, None)
                passes = len(p.refinement) - 1
                assert 1 <= passes <= steps and p.refinement[-1] == p.tokens and len(p.tokens) == k
                for t, block in enumerate(p.refinement[1:], 1):
                    assert block[:t] == chain[:t], (prompt, k, steps, t)
                if passes < steps:
                    assert p.tokens == chain  # stopped at the fixed point: the whole chain
                    early += 1
                assert p.q is None and p.parents == list(range(-1, k - 1))
            assert p.tokens == chain  # k passes always reach the whole chain
            if ranked:
                assert set(p.tokens) <= set(ranking[:200].tolist())
    assert early > 0  # the fixed-point stop was exercised


@pytest.mark.parametrize("prompt", [[5, 17, 230], [1, 2, 3, 1, 2, 3, 1, 2]])
def test_greedy_output_is_the_targets_own(prompt):
    decoder = tiny_decoder(extra=jacobis)
    own = model_greedy(decoder.target.model, prompt, 32)
    _, plain = run(decoder, prompt, method="ar", max_new_tokens=32)
    assert list(plain.token_ids) == own
    deepest = 0
    for method in ("jacobi", "jacobi-self"):
        for k in (1, 3, 8, 16):
            for steps in (1, 2, 3, None):
                events, spec = run(decoder, prompt, method=method, draft_len=k,
                                   refine_steps=steps, max_new_tokens=32)
                assert list(spec.token_ids) == own, (method, k, steps)
                deepest = max(deepest, *(e.n_accepted for e in events if isinstance(e, Verified)))
    assert deepest >= 3


@pytest.mark.parametrize("method,steps", [("jacobi-self", 2), ("jacobi", None)])
@pytest.mark.slow
def test_sampling_follows_the_target(method, steps):
    """Blocks of 3 drafted by argmax (q one-hot) under temperature 1: the joint law of the first
    three tokens is the target's (four are generated, so the first block is 3 deep)."""
    decoder = tiny_decoder(vocab_size=6, seed=2, init=0.15, later_scale=0.5, extra=jacobis)
    drafted = assert_law(decoder, method, [1, 4, 2], m=3, n=1500, draft_len=3, refine_steps=steps,
                         max_new_tokens=4)  # room for a first block of 3
    assert any(d.step == 0 and len(d.tokens) == 3 and len(d.refinement) >= 2 for d in drafted)


def test_the_drafters_cache_after_each_step_equals_a_fresh_pass():
    decoder = tiny_decoder(seed=4, extra=jacobis)
    prompt = [5, 6, 7, 8]
    lm = decoder.drafter("jacobi").refiner.lm
    committed = list(prompt)
    rejected = 0
    for event in decoder.run(prompt, Controls(method="jacobi", draft_len=8, refine_steps=3,
                                              max_new_tokens=30)):
        if isinstance(event, Drafted) and event.tokens:
            # the cache covers the committed ids and the last pass's input guesses
            assert lm.ids[:len(committed)] == committed
            assert lm.ids == committed + list(event.refinement[-2][:-1])
            with torch.no_grad():
                fresh = lm.base(input_ids=torch.tensor([lm.ids]), use_cache=True).past_key_values
            assert lm.cache.get_seq_length() == len(lm.ids)
            for got, want in zip(lm.cache.layers, fresh.layers):
                assert torch.allclose(got.keys, want.keys, atol=1e-5)
                assert torch.allclose(got.values, want.values, atol=1e-5)
        elif isinstance(event, Verified):
            committed += list(event.emitted)
            rejected += event.first_rejected is not None
    assert rejected > 0  # there were rejected guesses to crop away


def test_events_carry_the_passes_and_refine_steps_are_checked():
    decoder = tiny_decoder(extra=jacobis)
    events, _ = run(decoder, [5, 17, 230], method="jacobi", draft_len=6, refine_steps=2,
                    max_new_tokens=12)
    drafted = [e for e in events if isinstance(e, Drafted)]
    assert drafted and all(2 <= len(d.refinement) <= 3 for d in drafted)
    assert all(d.refinement[-1] == d.tokens and len(d.refinement_texts) == len(d.refinement)
               for d in drafted)
    plain, _ = run(decoder, [5, 17, 230], method="draft", draft_len=6, max_new_tokens=12)
    assert all(e.refinement == () for e in plain if isinstance(e, Drafted))
    from specscope.core.errors import SpecScopeError

    for bad in (0, 17):
        with pytest.raises(SpecScopeError, match="refine steps"):
            run(decoder, [5, 17, 230], method="jacobi", refine_steps=bad)
