"""What every drafter shares: registration, empty proposals, and an exact-law check over several
tokens (the other test_drafter_* files import `assert_law` and `greedy_matches_plain`)."""
import itertools

import pytest
import torch

from specscope.core.controls import Controls
from specscope.core.drafters.base import DrafterBase, Proposal
from specscope.core.events import Drafted
from specscope.core.sampling import Shaping, probs_from_logits
from tests.core.helpers import run, tiny_decoder
from tests.core.test_distribution import chi2_critical, chi_square


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and far faster when other jobs load the cores
    (threads of a 64-wide matmul wait on each other); the count is restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def exact_law(decoder, prompt, m, shaping):
    """The target's exact probability of every m-token continuation, as a flat [V**m] tensor."""
    model = decoder.target.model
    vocab = model.config.vocab_size
    law = torch.zeros(vocab ** m)
    with torch.no_grad():
        for i, seq in enumerate(itertools.product(range(vocab), repeat=m)):
            ctx, prob = list(prompt), 1.0
            for x in seq:
                p = probs_from_logits(model(torch.tensor([ctx])).logits[0, -1], shaping)
                prob *= float(p[x])
                if prob == 0.0:
                    break
                ctx.append(x)
            law[i] = prob
    return law


def sample_law(decoder, method, prompt, m, n, draft_len, shaping, before_run=None, **controls):
    """Counts of the first m tokens over n seeded runs, and the Drafted events seen. Each run
    generates m + 1 tokens, so its first step can draft m tokens deep (the engine caps a draft
    at the room left minus the target's own token); the law of the first m is unchanged."""
    vocab = decoder.target.model.config.vocab_size
    counts = torch.zeros(vocab ** m)
    drafted = []
    for seed in range(n):
        if before_run:
            before_run(seed)
        c = Controls(method=method, draft_len=draft_len, temperature=shaping.temperature,
                     top_k=shaping.top_k, top_p=shaping.top_p, seed=seed,
                     **{"max_new_tokens": m + 1, **controls})
        events = list(decoder.run(prompt, c))
        drafted += [e for e in events if isinstance(e, Drafted)]
        index = 0
        for x in events[-1].summary.token_ids[:m]:
            index = index * vocab + x
        counts[index] += 1
    return counts, drafted


def assert_law(decoder, method, prompt, m=3, n=1500, draft_len=3, temperature=1.0, top_p=1.0,
               before_run=None, top_k=0, **controls):
    """Chi-square test that sampled continuations follow the target exactly; returns the
    Drafted events so callers can check the case they meant to cover did happen."""
    shaping = Shaping(temperature, top_k, top_p)
    expected = exact_law(decoder, prompt, m, shaping) * n
    counts, drafted = sample_law(decoder, method, prompt, m, n, draft_len, shaping, before_run,
                                 **controls)
    stat, df = chi_square(counts, expected)
    assert stat < chi2_critical(df), f"{method}: chi2={stat:.1f} df={df}"
    return drafted


def greedy_matches_plain(decoder, method, prompt, lengths=range(1, 9), max_new_tokens=40):
    """Greedy output equals plain greedy output for every draft length; returns the summaries."""
    _, base = run(decoder, prompt, method="ar", max_new_tokens=max_new_tokens)
    out = []
    for k in lengths:
        _, spec = run(decoder, prompt, method=method, draft_len=k, max_new_tokens=max_new_tokens)
        assert spec.token_ids == base.token_ids, f"{method} draft_len={k} prompt={prompt}"
        out.append(spec)
    return out


class Silent(DrafterBase):
    """A drafter that always proposes nothing, even when asked for k > 0 tokens."""

    name = "silent"

    def read_params(self):
        return 0

    def propose(self, ids, k, shaping, generator):
        assert k > 0
        return Proposal()

    def feedback(self, ids, proposal, n_accepted):
        pass


def test_a_zero_token_proposal_is_a_plain_step():
    decoder = tiny_decoder(extra=lambda target, draft: {"silent": Silent})
    for temperature in (0.0, 1.0):
        _, plain = run(decoder, [5, 17, 230], method="ar", max_new_tokens=12, temperature=temperature)
        _, silent = run(decoder, [5, 17, 230], method="silent", draft_len=4, max_new_tokens=12,
                        temperature=temperature)
        assert silent.token_ids == plain.token_ids
        assert silent.steps == 12 and silent.drafted == 0 and silent.tau == 1.0


def test_the_session_offers_every_method(tiny_session, tmp_path, monkeypatch):
    from specscope.session import METHODS

    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path))  # no cached layer-skip search

    for method in ("lookup", "pool", "layerskip"):
        assert method in METHODS and method in tiny_session.decoder.methods
        prompt = tiny_session.encode("def add(a, b): return a + b")
        _, plain = run(tiny_session.decoder, prompt, method="ar", max_new_tokens=16)
        _, spec = run(tiny_session.decoder, prompt, method=method, draft_len=4, max_new_tokens=16)
        assert spec.token_ids == plain.token_ids, method


def test_pool_needs_a_drafter():
    from dataclasses import replace

    from specscope.core.errors import SpecScopeError
    from specscope.frontends.loading import check_options
    from specscope.profiles import load_profile

    profile = replace(load_profile("tiny-random"), drafter=None)
    with pytest.raises(SpecScopeError, match="needs a drafter"):
        check_options(profile, "pool", None, None)
    for method in ("lookup", "layerskip"):
        check_options(profile, method, None, None)


def test_drafting_by_context_is_the_named_capability_tree_growth_takes():
    """The draft model and FastMTP's head draft by context (base.py's DraftsByContext), so
    TreeDrafter can grow trees over either; a drafter without it (prompt lookup) does not."""
    from specscope.core.drafters.base import DraftsByContext
    from specscope.core.drafters.lookup import LookupDrafter
    from specscope.core.drafters.model import ModelDrafter
    from specscope.core.drafters.mtp import MTPDrafter

    decoder = tiny_decoder()
    assert isinstance(ModelDrafter(decoder.target, decoder.target.vocab_size), DraftsByContext)
    assert all(callable(getattr(MTPDrafter, name, None))
               for name in ("begin", "dist", "end", "token_id", "full_q", "propose", "configure"))
    assert not isinstance(LookupDrafter(), DraftsByContext)
