"""`--draft-len auto` with --overlap (core/adaptive.py): the step time counts only the drafting
the verification did not hide, and DuoDecoding's budget is the drafting one verification hides."""
from specscope.core.adaptive import AdaptiveLength


def fed(overlap: bool, t_draft: float, t_verify: float, accepted: int = 4) -> AdaptiveLength:
    """A policy after steps of 4 drafted tokens (accepted as given) on these measured costs;
    with overlap the first 2 of each were drafted ahead (not paid while the target waited)."""
    policy = AdaptiveLength(4, "cost", overlap=overlap)
    policy.start_run(0.1, 0.0, 1000)
    policy.observe(0, 0, 0, 0.0, t_verify)  # the first step is plain: a target pass
    for _ in range(30):
        reused = 2 if overlap else 0
        policy.observe(4, 4, accepted, t_draft * (4 - reused), t_verify, reused=reused)
    return policy


def test_the_budget_matches_drafting_to_verification():
    policy = fed(True, t_draft=0.02, t_verify=0.1)
    assert policy._draft_time() == 0.02  # measured on the tokens the target waited for
    assert policy.match_len() == 5  # 5 tokens of 0.02 s fit a 0.1 s verification
    assert fed(True, 0.05, 0.1).match_len() == 2


def test_hidden_drafting_pays_where_the_main_branch_is_likely():
    """An expensive drafter (half a target pass a token) whose first 3 tokens are accepted and
    the 4th almost never: drafting ahead raises the expected rate, and its budget stays where
    the verdict is likely to accept all and the next token be the drafter's guess."""
    serial = fed(False, t_draft=0.05, t_verify=0.1, accepted=3)
    overlapped = fed(True, t_draft=0.05, t_verify=0.1, accepted=3)
    acceptance = [a / r for a, r in zip(overlapped.passed, overlapped.reached)]
    k_serial, rate_serial = serial._best(acceptance)
    k_overlap, rate_overlap = overlapped._best(acceptance)
    assert rate_overlap > rate_serial and k_overlap < 3 == k_serial
