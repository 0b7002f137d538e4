"""Adaptive draft length: the rules, and exactness with them on."""
import pytest

from specscope.core.adaptive import AdaptiveLength
from specscope.core.controls import Controls
from specscope.core.drafters.base import DraftSettings
from specscope.core.events import Drafted
from specscope.core.sampling import Shaping
from tests.core.helpers import run, tiny_decoder


def feed(policy, steps, accept_rate, draft_s_per_token, verify_s):
    import random

    rng = random.Random(0)
    for _ in range(steps):
        k = policy.next_length()
        accepted = 0
        while accepted < k and rng.random() < accept_rate:
            accepted += 1
        policy.observe(k, k, accepted, k * draft_s_per_token, verify_s)


def test_heuristic_adds_two_after_full_acceptance_and_drops_one_otherwise():
    p = AdaptiveLength(start=4, rule="heuristic")
    p.observe(4, 4, 4, 0.1, 0.1)
    assert p.next_length() == 6
    p.observe(6, 6, 2, 0.1, 0.1)
    assert p.next_length() == 5
    for _ in range(10):
        p.observe(p.k, p.k, 0, 0.1, 0.1)
    assert p.next_length() == 1


def test_cost_rule_drafts_long_when_drafts_are_cheap_and_accepted():
    p = AdaptiveLength(start=3, rule="cost")
    feed(p, 40, accept_rate=1.0, draft_s_per_token=0.01, verify_s=0.2)
    assert p.next_length() >= 8


def test_cost_rule_falls_back_to_plain_decoding_when_no_length_pays():
    p = AdaptiveLength(start=3, rule="cost")
    feed(p, 40, accept_rate=0.0, draft_s_per_token=0.1, verify_s=0.2)
    lengths = []
    for _ in range(130):
        lengths.append(p.next_length())
        p.observe(lengths[-1], lengths[-1], 0, lengths[-1] * 0.1, 0.2)
    assert lengths.count(0) >= 127  # plain steps, with an occasional probe
    assert max(lengths) > 0  # the probe keeps estimates alive


def test_failed_probes_wait_longer_each_time():
    p = AdaptiveLength(start=3, rule="cost")
    feed(p, 300, accept_rate=0.0, draft_s_per_token=0.1, verify_s=0.2)
    gaps, last = [], None
    for step in range(300):
        k = p.next_length()
        p.observe(k, k, 0, k * 0.1, 0.2)
        if k:
            gaps += [step - last] if last is not None else []
            last = step
    assert gaps and gaps == sorted(gaps) and gaps[-1] > 8  # backed off from every 8 steps


def test_no_probe_where_drafting_cannot_pay_even_if_every_token_were_accepted():
    """A drafted token that costs more than a target pass (an int4 drafter on a CPU without
    AVX-512, measured 1.82 passes) can never pay: after the first measurements `auto` must
    stop drafting altogether, not probe every few steps (each probe lost time)."""
    p = AdaptiveLength(start=3, rule="cost")
    feed(p, 20, accept_rate=0.9, draft_s_per_token=0.4, verify_s=0.2)
    lengths = [p.next_length() for _ in range(200)]
    assert lengths == [0] * 200


def test_the_machines_measured_costs_are_the_priors():
    """Before any draft is measured, a compute-bound verify curve and a costly drafted token from
    `specscope doctor` keep the rule plain; the flat curve and a cheap token let it draft."""
    def first_lengths(curve, ratio):
        p = AdaptiveLength(start=3, rule="cost", verify_curve=curve, draft_ratio=ratio)
        p.start_run(ratio=0.3, target_prefill_s=0.0, budget=64)
        p.observe(0, 0, 0, 0.0, 0.2)  # the first, plain step measures a target pass
        return p.next_length()

    flat = {1: 1.0, 2: 1.02, 4: 1.05, 8: 1.1, 16: 1.4}
    steep = {1: 1.0, 2: 1.5, 4: 2.1, 8: 3.8, 16: 7.5}
    assert first_lengths(flat, 0.5) > 0
    assert first_lengths(steep, 0.5) == 0
    assert first_lengths(flat, 1.2) == 0


def test_cost_rule_prefers_shorter_drafts_when_drafting_is_costly():
    cheap, costly = AdaptiveLength(rule="cost"), AdaptiveLength(rule="cost")
    feed(cheap, 40, accept_rate=0.75, draft_s_per_token=0.01, verify_s=0.2)
    feed(costly, 40, accept_rate=0.75, draft_s_per_token=0.09, verify_s=0.2)
    assert 0 < costly.next_length() < cheap.next_length()


def test_confidence_cutoff_stops_the_draft_early():
    decoder = tiny_decoder()
    drafter = decoder.drafter("draft")
    drafter.configure(DraftSettings(min_confidence=1.01))  # nothing is that sure: one token
    proposal = drafter.propose([5, 17, 230, 41], 6, Shaping(), None)
    assert len(proposal.tokens) == 1
    drafter.configure(DraftSettings())
    assert len(drafter.propose([5, 17, 230, 41], 6, Shaping(), None).tokens) == 6


@pytest.mark.parametrize("rule", ["cost", "heuristic"])
def test_adaptive_greedy_equals_plain(rule):
    decoder = tiny_decoder()
    lengths = set()
    for prompt in ([5, 17, 230, 41], [900, 3, 3, 3, 77, 12]):
        _, plain = run(decoder, prompt, method="ar", max_new_tokens=50)
        events, spec = run(decoder, prompt, method="draft", adaptive=True, adaptive_rule=rule,
                           draft_len=3, max_new_tokens=50)
        assert spec.token_ids == plain.token_ids
        lengths |= {e.draft_len for e in events if isinstance(e, Drafted)}
    assert len(lengths) > 1  # the length did change


@pytest.mark.slow
def test_adaptive_sampling_preserves_target_distribution():
    from tests.core.test_distribution import VOCAB, chi2_critical, chi_square, exact_joint

    import torch

    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5)
    n = 1500
    counts = torch.zeros(VOCAB, VOCAB)
    for seed in range(n):
        c = Controls(method="draft", adaptive=True, draft_len=3, temperature=1.0, seed=seed,
                     max_new_tokens=2)
        a, b = list(decoder.run([1, 4, 2], c))[-1].summary.token_ids
        counts[a, b] += 1
    stat, df = chi_square(counts, exact_joint(decoder, Shaping(1.0)) * n)
    assert stat < chi2_critical(df)


def test_the_first_step_is_plain_and_measures_a_target_pass():
    p = AdaptiveLength(rule="cost")
    p.start_run(ratio=0.2, target_prefill_s=0.1, budget=100)
    assert p.next_length() == 0
    p.observe(0, 0, 0, 0.0, 0.2)
    assert p.next_length() > 0  # a cheap drafter, a short prompt: worth trying


def test_a_drafter_prefill_that_cannot_be_repaid_keeps_the_answer_plain():
    """Before its first draft the drafter must read the prompt; with few tokens left to
    generate, even good acceptance cannot repay it."""
    long_prompt = AdaptiveLength(rule="cost")
    long_prompt.start_run(ratio=0.4, target_prefill_s=30.0, budget=16)
    long_prompt.observe(0, 0, 0, 0.0, 0.2)
    assert long_prompt.next_length() == 0
    short_prompt = AdaptiveLength(rule="cost")
    short_prompt.start_run(ratio=0.4, target_prefill_s=0.3, budget=200)
    short_prompt.observe(0, 0, 0, 0.0, 0.2)
    assert short_prompt.next_length() > 0


def test_one_slow_first_draft_does_not_keep_every_later_run_plain():
    """The drafter's prefill is learnt from a run's first draft. A spike there (another process
    on the CPU) may make the next run stay plain, but not every run after it: a plain run
    cannot re-measure the prefill, so it forgets the measurement."""
    p = AdaptiveLength(rule="cost")

    def run_once(first_draft_s):
        p.start_run(ratio=0.05, target_prefill_s=0.5, budget=64)
        p.observe(0, 0, 0, 0.0, 0.2)
        drafted = 0
        for _ in range(40):
            k = p.next_length()
            if k:
                drafted += 1
                p.observe(k, k, min(k, 2), first_draft_s if drafted == 1 else 0.01 * k, 0.22)
            else:
                p.observe(0, 0, 0, 0.0, 0.2)
        return drafted

    assert run_once(first_draft_s=0.05) > 0
    assert run_once(first_draft_s=400.0) > 0  # the spike: measured after this run's first draft
    assert run_once(first_draft_s=0.05) == 0  # its prefill estimate cannot be repaid: plain
    assert p.declined
    assert run_once(first_draft_s=0.05) > 0  # forgotten: drafting again
    assert run_once(first_draft_s=0.05) > 0


def test_the_confidence_cut_off_is_the_measured_cost_ratio():
    p = AdaptiveLength(rule="cost")
    p.start_run(ratio=0.3, target_prefill_s=0.0, budget=100)
    p.observe(0, 0, 0, 0.0, 0.2)
    p.observe(4, 4, 4, 0.4, 0.22)  # the first draft (prefill included)
    p.observe(4, 4, 4, 0.32, 0.22)  # 0.08 s a token
    assert p.min_confidence == pytest.approx(p.draft_per_token / p._verify_time(0))
    assert 0.3 < p.min_confidence < 0.5


def test_an_artificially_slow_drafter_falls_back_to_plain_decoding():
    """A drafter 50 ms a token against a tiny target's ~1 ms pass: auto must stop drafting."""
    import time

    from specscope.core.drafters.model import ModelDrafter

    class Slow(ModelDrafter):
        def propose(self, ids, k, shaping, generator):
            out = super().propose(ids, k, shaping, generator)
            time.sleep(0.05 * len(out.tokens))
            return out

    decoder = tiny_decoder(extra=lambda t, d: {"slow": lambda: Slow(d, t.vocab_size)})
    prompt = [5, 17, 230, 41]
    _, plain = run(decoder, prompt, method="ar", max_new_tokens=60)
    events, spec = run(decoder, prompt, method="slow", adaptive=True, max_new_tokens=60)
    assert spec.token_ids == plain.token_ids
    lengths = [e.draft_len for e in events if isinstance(e, Drafted)]
    assert lengths.count(0) >= 0.8 * len(lengths)  # plain steps, an occasional probe
