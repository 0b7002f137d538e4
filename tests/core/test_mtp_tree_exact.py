"""The mtp-tree's root level by exact enumeration: with the head's q fixed (its logits replaced)
and every sequence of sibling draws enumerated with its chance, the multi-candidate verifier's
output law, summed over the drafts, is exactly the target's p. This catches what a chi-square
over a few thousand runs may miss: a floor that prunes siblings by their drawn token (the count
of siblings must be decided from q alone), and a copied node tried before the head's sampled
siblings (its presence depends on their draws)."""
import itertools

import pytest
import torch

from specscope.core.controls import Controls
from specscope.core.drafters import mtp_tree as mtp_tree_module
from specscope.core.sampling import Shaping, residual
from tests.core.test_mtp_tree import SMALL, tree_decoder

# q over the head's rows: three ranks at or above a floor of 0.12 (three siblings), and three
# rows below it, which a sibling still draws 15% of the time
Q = torch.tensor([0.35, 0.3, 0.2, 0.08, 0.05, 0.02])
P = torch.tensor([0.1, 0.05, 0.3, 0.25, 0.2, 0.1])  # the target's next-token law (6 tokens)


def verifier_law(tokens, q_rows, p):
    """The root-only tree's output law under sample_verify_tree, exactly: children in order,
    each accepted with min(1, r(x)/q(x)), r <- residual after each rejection, then r."""
    out, mass, r = torch.zeros_like(p), 1.0, p.clone().double()
    for x, q in zip(tokens, q_rows):
        q = q.double()
        a = min(1.0, float(r[x] / q[x])) if q[x] > 0 else 0.0
        out[x] += mass * a
        mass *= 1 - a
        r = residual(r, q, x)
    return out + mass * r


def exact_law(drafter, ids, monkeypatch):
    drafter.logits = lambda states: Q.log().to(states.dtype)[None].expand(len(states), -1)
    script = []

    def scripted(probs, shaping, generator, rank=0):
        return script.pop(0)

    monkeypatch.setattr(mtp_tree_module, "pick", scripted)
    shaping = Shaping(1.0)
    script[:] = [0] * 8
    drafter.propose(ids, 1, shaping, None)
    picks = 8 - len(script)  # how many siblings the root gets (decided from q)
    assert picks == 3
    total = torch.zeros(len(P), dtype=torch.float64)
    copied = 0
    for draws in itertools.product(range(len(Q)), repeat=picks):
        script[:] = list(draws)
        proposal = drafter.propose(ids, 1, shaping, None)
        assert not script
        weight = float(torch.prod(Q[list(draws)].double()))
        assert all(p == -1 for p in proposal.parents)
        copied += None in proposal.q_token
        total += weight * verifier_law(proposal.tokens, proposal.q, P.double())
    return total, copied


@pytest.mark.parametrize("copy", [False, True])
def test_the_root_level_keeps_the_law_exactly(copy, monkeypatch):
    decoder = tree_decoder("levels", context_rows=False, copy=copy, width=3, expand=2, floor=0.12,
                           **SMALL)
    ids = [1, 4, 2, 5, 0, 1, 4]  # ends in "1 4", which 2 followed before: the copy is 2
    # one run first: the head's cache then holds the target's states for ids
    list(decoder.run(ids, Controls(method="mtp-tree", draft_len=1, temperature=1.0, seed=0,
                                   max_new_tokens=1)))
    drafter = decoder.drafter("mtp-tree")
    total, copied = exact_law(drafter, ids, monkeypatch)
    assert copied > 0 if copy else copied == 0  # a copied root node, unless a sibling drew it
    assert torch.allclose(total, P.double(), atol=1e-9), (total - P.double()).abs().max()
