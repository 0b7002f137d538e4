"""The tree verifier alone, on random p, q and tree shapes: the first emitted token follows p.

Cheap and direct: no model. Children are drawn the way a sampling tree drafter draws them
(independently from q), the verifier picks a path and a token, and over many draws the first
token's law must be p's row 0. Two mutations a verifier (or a drafter) can make are checked to
break the law, so the test can fail: no residual update between siblings, and siblings drawn
without replacement.
"""
import pytest
import torch

from specscope.core import verify
from specscope.core.verify import sample_verify_tree
from tests.core.test_distribution import chi2_critical, chi_square

V = 5
DRAWS = 100_000


def random_case(seed):
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(8, V, generator=g) * 1.5, -1)
    q = torch.softmax(torch.randn(8, V, generator=g) * 1.5, -1)
    return p, q


def first_token_counts(p, q, n_children, draws, seed, without_replacement=False):
    """Counts of the first emitted token, with n_children siblings below the root (each with
    one child of its own, so the tree is 2 deep), children drawn from q[0]."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.zeros(V)
    parents = [-1] * n_children + list(range(n_children))
    for _ in range(draws):
        if without_replacement:
            roots = torch.multinomial(q[0], n_children, replacement=False, generator=g).tolist()
        else:
            roots = torch.multinomial(q[0], n_children, replacement=True, generator=g).tolist()
        kids = [int(torch.multinomial(q[1], 1, generator=g)) for _ in range(n_children)]
        tokens = roots + kids
        q_rows = torch.stack([q[0]] * n_children + [q[1]] * n_children)
        # p rows: root, then after each node (siblings' children see p[1])
        p_rows = torch.stack([p[0]] + [p[1]] * (2 * n_children))
        v = sample_verify_tree(tokens, parents, p_rows, q_rows, g)
        first = tokens[v.path[0]] if v.path else v.token
        counts[first] += 1
    return counts


def law_holds(counts, p_row):
    stat, df = chi_square(counts, p_row * counts.sum())
    return stat < chi2_critical(df), stat


@pytest.mark.parametrize("seed,n_children", [(0, 2), (1, 3)])
@pytest.mark.slow
def test_first_token_follows_p_with_siblings_below_the_root(seed, n_children):
    p, q = random_case(seed)
    assert (p[0] - q[0]).abs().sum() > 0.5  # q must differ from p for this to mean something
    ok, stat = law_holds(first_token_counts(p, q, n_children, DRAWS // 2, seed), p[0])
    assert ok, stat


def test_no_residual_update_between_siblings_is_caught(monkeypatch):
    p, q = random_case(0)
    monkeypatch.setattr(verify, "residual", lambda p_row, q_row=None, x=None: p_row)
    ok, stat = law_holds(first_token_counts(p, q, 3, 20_000, 0), p[0])
    assert not ok, stat


def test_siblings_drawn_without_replacement_are_caught():
    p, q = random_case(1)
    ok, stat = law_holds(first_token_counts(p, q, 3, 20_000, 1, without_replacement=True), p[0])
    assert not ok, stat


def test_a_chain_follows_p_token_by_token():
    """Chains take the vectorised path: the joint law of the first two tokens is p's."""
    p, q = random_case(3)
    g = torch.Generator().manual_seed(3)
    counts = torch.zeros(V, V)
    for _ in range(DRAWS // 4):
        x0 = int(torch.multinomial(q[0], 1, generator=g))
        x1 = int(torch.multinomial(q[1], 1, generator=g))
        # p after x0 does not depend on x0 here (a fixed row), so the law is p[0] x p[1]
        v = sample_verify_tree([x0, x1], [-1, 0], p[:3], q[:2], g)
        out = [[x0, x1][i] for i in v.path] + [v.token]
        if len(out) < 2:  # rejected at 0: the next token would come from p[1] in the next step
            out.append(int(torch.multinomial(p[1], 1, generator=g)))
        counts[out[0], out[1]] += 1
    expected = torch.outer(p[0], p[1]) * counts.sum()
    stat, df = chi_square(counts, expected)
    assert stat < chi2_critical(df), stat


def test_randomness_stays_on_p_device_and_one_hot_is_never_built(monkeypatch):
    """A deterministic proposal (q=None) must not build a [V] one-hot row."""
    calls = []
    real = torch.nn.functional.one_hot
    monkeypatch.setattr(torch.nn.functional, "one_hot", lambda *a, **k: calls.append(1) or real(*a, **k))
    p, _ = random_case(4)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        sample_verify_tree([1, 2, 3], [-1, -1, 0], p[:4], None, g)
        sample_verify_tree([1, 2, 3], [-1, 0, 1], p[:4], None, g)
    assert calls == []
