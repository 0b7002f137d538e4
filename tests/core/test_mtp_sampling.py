"""Sampling through the loop with FastMTP drafts, 3 deep, must follow the target's law: the joint
of the first three tokens on a 6-token vocabulary, computed exactly, against seeded runs
(chi-square), with the full vocabulary, with trimmed rows (q zero outside them) and with trimmed
rows plus the context's tokens."""
import pytest
import torch

from specscope.core.controls import Controls
from specscope.core.drafters.mtp import MTPDrafter
from specscope.core.sampling import Shaping, probs_from_logits
from tests.core.helpers import tiny_decoder
from tests.core.test_distribution import chi2_critical, chi_square
from tests.core.test_mtp_drafter import artifact_for

VOCAB = 6
PROMPT = [1, 4, 2]


def exact_joint3(model, shaping, prompt=PROMPT):
    joint = torch.zeros(VOCAB, VOCAB, VOCAB)
    with torch.no_grad():
        def p(ctx):
            return probs_from_logits(model(torch.tensor([ctx])).logits[0, -1], shaping)

        p1 = p(prompt)
        for a in range(VOCAB):
            p2 = p(prompt + [a])
            for b in range(VOCAB):
                joint[a, b] = p1[a] * p2[b] * p(prompt + [a, b])
    return joint


def mtp_sampling_decoder(k=None, context_rows=False):
    ranking = torch.tensor([3, 0, 5, 1, 4, 2])

    def extra(target, draft):
        return {"mtp": lambda: MTPDrafter(target, artifact_for(target.model, ranking=ranking, k=k,
                                                                noise_seed=7),
                                          context_rows=context_rows)}

    return tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5, extra=extra)


def check_law(k, n=2000, context_rows=False):
    decoder = mtp_sampling_decoder(k, context_rows)
    expected = exact_joint3(decoder.target.model, Shaping(1.0)) * n
    counts = torch.zeros(VOCAB, VOCAB, VOCAB)
    drafted = accepted = 0
    for seed in range(n):
        controls = Controls(method="mtp", draft_len=3, temperature=1.0, seed=seed, max_new_tokens=4)
        summary = list(decoder.run(PROMPT, controls))[-1].summary
        a, b, c = summary.token_ids[:3]
        counts[a, b, c] += 1
        drafted += summary.drafted
        accepted += summary.accepted
    assert 0.1 < accepted / drafted < 0.9  # drafts are neither always right nor always wrong
    stat, df = chi_square(counts, expected)
    assert stat < chi2_critical(df), f"chi2={stat:.1f} df={df}"
    return decoder


@pytest.mark.slow
def test_sampling_law_with_the_full_vocabulary():
    check_law(None)


@pytest.mark.slow
def test_sampling_law_with_trimmed_rows():
    decoder = check_law(3)
    q = decoder.drafter("mtp").propose(PROMPT + [0], 3, Shaping(1.0), torch.Generator().manual_seed(0)).q
    assert torch.all(q[:, [1, 2, 4]] == 0)  # nothing outside the kept rows 3, 0, 5


@pytest.mark.slow
def test_sampling_law_with_context_rows():
    """Two ranked rows (3, 0) and the context's tokens: the prompt's 1, 4, 2 from the start, and
    5 only once the target has emitted it, so q's rows change with the drawn tokens."""
    decoder = check_law(2, context_rows=True)
    drafter = decoder.drafter("mtp")
    q = drafter.propose(PROMPT + [0], 3, Shaping(1.0), torch.Generator().manual_seed(0)).q
    assert torch.all(q[:, 5] == 0) and torch.all(q[:, [1, 4, 2]].sum(-1) > 0)
    q = drafter.propose(PROMPT + [5], 3, Shaping(1.0), torch.Generator().manual_seed(0)).q
    assert torch.all(q[:, 5] > 0)
