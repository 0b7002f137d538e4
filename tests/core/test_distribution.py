"""Sampling through the speculative loop must follow the target's distribution exactly.

On a 6-token vocabulary, the joint law of the first two generated tokens is computed exactly
from the target; thousands of seeded speculative runs must match it (chi-square). Mixing up p
and q in the verifier, or skipping the residual, makes this test fail.
"""
import math

import pytest
import torch

from specscope.core.controls import Controls
from specscope.core.sampling import Shaping, probs_from_logits
from tests.core.helpers import tiny_decoder

VOCAB = 6
PROMPT = [1, 4, 2]


def exact_joint(decoder, shaping):
    model = decoder.target.model
    joint = torch.zeros(VOCAB, VOCAB)
    with torch.no_grad():
        p1 = probs_from_logits(model(torch.tensor([PROMPT])).logits[0, -1], shaping)
        for a in range(VOCAB):
            p2 = probs_from_logits(model(torch.tensor([PROMPT + [a]])).logits[0, -1], shaping)
            joint[a] = p1[a] * p2
    return joint


def chi_square(counts, expected):
    """Statistic and degrees of freedom, pooling cells with expected count < 5."""
    stat, df, pool_obs, pool_exp = 0.0, -1, 0.0, 0.0
    for o, e in zip(counts.flatten().tolist(), expected.flatten().tolist()):
        if e < 5:
            pool_obs += o
            pool_exp += e
            continue
        stat += (o - e) ** 2 / e
        df += 1
    if pool_exp > 0:
        stat += (pool_obs - pool_exp) ** 2 / pool_exp
        df += 1
    return stat, df


def chi2_critical(df, z=3.29):
    """Wilson-Hilferty approximation of the chi-square quantile (z=3.29: p = 0.0005)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def sample_joint(decoder, method, n, draft_len, temperature=1.0, top_p=1.0):
    counts = torch.zeros(VOCAB, VOCAB)
    for seed in range(n):
        controls = Controls(method=method, draft_len=draft_len, temperature=temperature,
                            top_p=top_p, seed=seed, max_new_tokens=2)
        summary = list(decoder.run(PROMPT, controls))[-1].summary
        a, b = summary.token_ids
        counts[a, b] += 1
    return counts


def assert_follows_target(decoder, method, draft_len=3, temperature=1.0, top_p=1.0, n=2000):
    expected = exact_joint(decoder, Shaping(temperature, 0, top_p)) * n
    counts = sample_joint(decoder, method, n, draft_len, temperature, top_p)
    stat, df = chi_square(counts, expected)
    assert stat < chi2_critical(df), f"chi2={stat:.1f} df={df}"
    return counts


@pytest.mark.slow
def test_draft_model_sampling_preserves_target_distribution():
    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5)
    # The drafter must actually differ from the target for the test to mean something.
    with torch.no_grad():
        q = torch.softmax(decoder.drafter("draft").lm.model(torch.tensor([PROMPT])).logits[0, -1], -1)
        p = torch.softmax(decoder.target.model(torch.tensor([PROMPT])).logits[0, -1], -1)
    assert (p - q).abs().sum() > 0.5
    assert_follows_target(decoder, "draft")


@pytest.mark.slow
def test_sampling_with_temperature_and_top_p():
    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5)
    assert_follows_target(decoder, "draft", temperature=0.7, top_p=0.9, n=1500)


def test_a_verifier_that_mixes_up_p_and_q_is_caught(monkeypatch):
    """Sanity check of the test itself: swapping p and q in the acceptance rule must fail."""
    import specscope.core.engine as engine
    from specscope.core.verify import sample_verify_tree

    def broken(draft, parents, p, q, generator):
        k = len(draft)
        if q is None:
            return sample_verify_tree(draft, parents, p, q, generator)
        return sample_verify_tree(draft, parents, torch.cat([q, p[k:]]), p[:k], generator)

    monkeypatch.setattr(engine, "sample_verify_tree", broken)
    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5)
    expected = exact_joint(decoder, Shaping(1.0)) * 1500
    stat, df = chi_square(sample_joint(decoder, "draft", 1500, 3), expected)
    assert stat > chi2_critical(df)
