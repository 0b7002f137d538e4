"""Prompt lookup: proposes exactly what followed the matched n-gram, and stays exact."""
import pytest

from specscope.core.drafters.lookup import LookupDrafter, find_continuation
from specscope.core.events import Drafted
from specscope.core.sampling import Shaping
from tests.core.helpers import run, tiny_decoder
from tests.core.test_drafter_common import assert_law, greedy_matches_plain, one_thread  # noqa: F401

# On a 16-token vocabulary the tiny target's greedy text repeats itself, so lookups get accepted.
PROMPTS = [[5, 7, 2, 9], [9, 3, 3, 3, 7, 12, 6, 11, 2], [10, 2, 3, 10, 2, 3, 10, 2]]


def lookups(target, draft):
    return {"lookup": LookupDrafter, "lookup2": lambda: LookupDrafter(max_ngram=3, min_ngram=2)}


@pytest.fixture(scope="module")
def decoder():
    return tiny_decoder(vocab_size=16, extra=lookups)


def test_proposes_what_followed_the_most_recent_match():
    ids = [1, 2, 3, 9, 1, 2, 3, 7, 8, 4, 1, 2, 3]
    assert find_continuation(ids, 3) == [7, 8, 4]  # the 3-gram (1 2 3), its latest occurrence
    assert find_continuation(ids, 10) == [7, 8, 4, 1, 2, 3]  # runs up to the end of the text
    assert find_continuation([5, 6, 7, 1, 5, 6], 2) == [7, 1]  # no 3-gram match: the 2-gram
    assert find_continuation([5, 6, 7, 1, 4, 6], 2, min_ngram=2) == []  # only a 1-gram matches
    assert find_continuation([5, 6, 7, 1, 4, 6], 2) == [7, 1]
    assert find_continuation([4, 4, 4, 4], 5) == [4]  # the suffix itself never counts
    assert find_continuation([1, 2, 1, 2], 0) == [] and find_continuation([3], 4) == []
    # overlapping copies go on through what they copied: a run, a period
    assert find_continuation([4, 4, 4, 4], 5, overlap=True) == [4, 4, 4, 4, 4]
    assert find_continuation([9, 1, 2, 1, 2], 5, overlap=True) == [1, 2, 1, 2, 1]
    assert find_continuation([1, 2, 3, 7, 8, 1, 2, 3], 7, overlap=True) == [7, 8, 1, 2, 3, 7, 8]
    assert find_continuation([5, 6, 7, 1, 4, 6], 2, min_ngram=2, overlap=True) == []
    proposal = LookupDrafter().propose(ids, 2, Shaping(), None)
    assert proposal.tokens == [7, 8] and proposal.parents == [-1, 0]
    assert proposal.q is None and proposal.q_token == [None, None]
    assert LookupDrafter().read_params() == 0


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("method", ["lookup", "lookup2"])
def test_greedy_lookup_equals_plain(decoder, prompt, method):
    specs = greedy_matches_plain(decoder, method, prompt, lengths=(1, 2, 4, 7))
    assert all(s.drafted > 0 for s in specs)
    assert all(s.accepted > 0 for s in specs)  # proposals happen and some are right


def test_no_match_means_plain_steps():
    decoder = tiny_decoder(extra=lookups)  # 1024 tokens: this text never repeats a 2-gram
    _, plain = run(decoder, [5, 17, 230, 41], method="ar", max_new_tokens=20)
    _, spec = run(decoder, [5, 17, 230, 41], method="lookup2", draft_len=5, max_new_tokens=20)
    assert spec.token_ids == plain.token_ids and spec.drafted == 0 and spec.tau == 1.0


def test_eos_inside_a_lookup_draft():
    """The EOS token also occurs in the prompt (as in a chat), so lookup copies it mid-draft."""
    prompt = [5, 7, 2, 9, 8, 6, 8, 2, 4]
    _, base = run(tiny_decoder(vocab_size=16), prompt, method="ar", max_new_tokens=40)
    covered = False
    for eos in dict.fromkeys(base.token_ids):  # try the answer's tokens as EOS, in order
        stopper = tiny_decoder(vocab_size=16, eos_ids={eos}, extra=lookups)
        _, plain = run(stopper, prompt, method="ar", max_new_tokens=40)
        assert plain.stop_reason == "eos"
        for k in (2, 4, 6):
            events, spec = run(stopper, prompt, method="lookup", draft_len=k, max_new_tokens=40)
            assert spec.token_ids == plain.token_ids and spec.stop_reason == "eos"
            covered |= any(eos in e.tokens[:-1] for e in events if isinstance(e, Drafted))
        if covered:
            break
    assert covered


@pytest.mark.slow
def test_sampling_with_lookup_follows_the_target():
    decoder = tiny_decoder(vocab_size=6, seed=2, init=0.15, later_scale=0.5, extra=lookups)
    drafted = assert_law(decoder, "lookup", [1, 4, 2, 5, 1, 4], m=3, n=3000, draft_len=3)
    assert sum(len(d.tokens) for d in drafted) > 3000  # the lookups did propose
