"""Verification on hand-written logits with known answers."""
import math

import torch

from specscope.core.sampling import Shaping, probs_from_logits, residual
from tests.core.reference import greedy_verify, speculative_sample


def test_greedy_accepts_matching_prefix_then_target_token():
    # target argmax per position: 5, 7, 9, 2 ; drafts 5, 7, 1 -> 2 accepted, correction 9
    v = greedy_verify([5, 7, 1], [5, 7, 9, 2])
    assert (v.accepted, v.token) == (2, 9)


def test_greedy_all_accepted_gives_bonus():
    v = greedy_verify([5, 7], [5, 7, 3])
    assert (v.accepted, v.token) == (2, 3)


def test_greedy_first_rejected():
    v = greedy_verify([4], [5, 6])
    assert (v.accepted, v.token) == (0, 5)


def test_greedy_shaping_is_one_hot_argmax():
    p = probs_from_logits(torch.tensor([[0.1, 3.0, 0.2]]), Shaping(0.0))
    assert p.tolist() == [[0.0, 1.0, 0.0]]


def test_temperature_top_k_top_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    p = probs_from_logits(logits, Shaping(1.0))
    assert torch.allclose(p, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=1e-6)
    p = probs_from_logits(logits, Shaping(1.0, top_k=2))
    assert torch.allclose(p, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=1e-6)
    # top-p 0.8: 0.5 + 0.3 reaches 0.8 -> the rest is dropped
    p = probs_from_logits(logits, Shaping(1.0, top_p=0.8))
    assert torch.allclose(p, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=1e-6)
    # temperature 2 flattens: p ~ sqrt(p)
    p = probs_from_logits(logits, Shaping(2.0))
    s = torch.sqrt(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.allclose(p, s / s.sum(), atol=1e-6)


def test_residual_is_normalised_positive_part():
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.6, 0.2])
    assert torch.allclose(residual(p, q), torch.tensor([1.0, 0.0, 0.0]))


def test_sampling_accepts_when_p_dominates_q():
    # p(x) >= q(x) for the drafted token: always accepted, whatever u is.
    p = torch.tensor([[0.1, 0.9], [0.5, 0.5]])
    q = torch.tensor([[0.5, 0.5]])
    for seed in range(20):
        v = speculative_sample([1], p, q, torch.Generator().manual_seed(seed))
        assert v.accepted == 1


def test_sampling_rejects_impossible_token_and_resamples_from_residual():
    # p(x) = 0: always rejected; residual max(0, p - q) is all on token 0.
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    q = torch.tensor([[0.0, 1.0]])
    for seed in range(20):
        v = speculative_sample([1], p, q, torch.Generator().manual_seed(seed))
        assert (v.accepted, v.token) == (0, 0)


def test_sampling_acceptance_rate_is_p_over_q():
    # p(x)/q(x) = 0.25 for the drafted token: accepted about a quarter of the time.
    p = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    q = torch.tensor([[0.8, 0.2]])
    g = torch.Generator().manual_seed(0)
    n = 4000
    acc = sum(speculative_sample([0], p, q, g).accepted for _ in range(n))
    assert abs(acc / n - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n)


def test_one_hot_drafter_accepts_with_probability_p():
    p = torch.tensor([[0.3, 0.7], [0.5, 0.5]])
    g = torch.Generator().manual_seed(1)
    n = 4000
    acc = sum(speculative_sample([0], p, None, g).accepted for _ in range(n))
    assert abs(acc / n - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
