"""Drafting ahead keeps the target's output: greedy identical to plain decoding, and the joint
law of the first 3 tokens the target's, for the draft model's chain and tree drafted in their
own worker process (core/workers.py) and, the same logic, in this process (InlineOverlap). Each
test checks that what it means did occur: the main branch and hedges used, verdicts that threw
away what was drafted ahead at every position, hedges missed. A broken variant that keeps
pre-drafted tokens a verdict invalidated fails the same law test (the negative control)."""
import pytest
from specscope.core.drafters.model import ModelDrafter
from specscope.core.drafters.overlap import Branch, Speculator
from specscope.core.drafters.worker import DraftWorker
from specscope.core.workers import WorkerSpec
from tests.core.helpers import run, tiny_decoder
from tests.core.overlap_helpers import InlineOverlap, coverage, drafted_of, overlap_factories
from tests.core.test_drafter_common import assert_law, one_thread  # noqa: F401

VOCAB = 6
PROMPT = [1, 4, 2]
TINY = dict(seed=2, vocab_size=VOCAB, init=0.15, later_scale=0.5)  # test_law_deep's pair
TREE = dict(width=2, branch_below=1.0, alt_len=2)


@pytest.fixture(scope="module")
def small_worker():
    worker = DraftWorker(WorkerSpec("tiny", VOCAB, tiny=dict(role="draft", **TINY), tree=TREE,
                                    finish_branches=True))
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def big_worker():
    worker = DraftWorker(WorkerSpec("tiny", 1024, tiny=dict(role="draft", seed=0),
                                    finish_branches=True))
    yield worker
    worker.close()


def cuts(seen, branch):
    return {cut for b, cut, n, _ in seen if b == branch}


@pytest.mark.parametrize("method", ["draft", "tree", "inline-draft"])
def test_greedy_is_plain_decoding(big_worker, method):
    decoder = tiny_decoder(extra=overlap_factories(big_worker, 1024, {}))
    seen = set()
    for prompt in ([5, 17, 230], [9, 9, 9, 40], [300, 2]):
        _, base = run(decoder, prompt, method="ar", max_new_tokens=40)
        for k in (1, 2, 4, 6):
            events, spec = run(decoder, prompt, method=method, draft_len=k, max_new_tokens=40,
                               overlap=True)
            assert spec.token_ids == base.token_ids, (method, k, prompt)
            assert spec.overlapped and spec.predrafted == spec.reused + spec.discarded
            seen |= coverage(drafted_of(events))
    assert cuts(seen, "main") and cuts(seen, "hedge")  # both kinds of branch were used
    if method != "tree":  # a tree's verdict may leave its main path: no fixed cut to check
        # drafted-ahead tokens thrown away after verdicts cutting at every position of a 4-draft
        assert {cut for b, cut, n, _ in seen if b == "" and n == 4} == {0, 1, 2, 3, 4}
        assert any(missed for *_, missed in seen)  # a hedge ready, with another token


def test_auto_length_overlapped_drafts_several_sequences_where_unsure(big_worker):
    """DuoDecoding's multi-sequence drafting: `draft` with --draft-len auto and --overlap
    proposes a tree where its first tokens are unsure; the output is plain decoding's."""
    from specscope.core.tree import is_chain

    decoder = tiny_decoder(extra=overlap_factories(big_worker, 1024, {}))
    _, base = run(decoder, [5, 17, 230], method="ar", max_new_tokens=40)
    events, spec = run(decoder, [5, 17, 230], method="draft", adaptive=True, max_new_tokens=40,
                       overlap=True)
    assert spec.token_ids == base.token_ids
    assert any(d.tokens and not is_chain(list(d.parents)) for d in drafted_of(events))


@pytest.mark.parametrize("method", ["pool", "jacobi"])
def test_pool_and_jacobi_drafting_ahead_is_plain_decoding(big_worker, method):
    """Their main branch's passes drafted ahead, then the hedges': used after a verdict that
    committed their context, thrown away otherwise; the output is the target's either way."""
    decoder = tiny_decoder(extra=overlap_factories(big_worker, 1024, {}))
    branches, reused, seen = set(), 0, set()
    for prompt in ([5, 17, 230], [9, 9, 9, 40], [300, 2]):
        _, base = run(decoder, prompt, method="ar", max_new_tokens=40)
        for k in (1, 3, 6):
            events, spec = run(decoder, prompt, method=method, draft_len=k, max_new_tokens=40,
                               overlap=True)
            assert spec.token_ids == base.token_ids, (method, k, prompt)
            drafted = [d for d in drafted_of(events) if d.overlap is not None]
            branches |= {d.overlap.branch for d in drafted}
            reused += sum(d.overlap.reused for d in drafted)
            seen |= coverage(drafted_of(events))
    assert {"main", "hedge", ""} <= branches and reused > 0
    assert cuts(seen, "hedge") and any(missed for *_, missed in seen)  # hedges hit and missed


def test_serial_through_the_worker_is_plain_decoding(big_worker):
    decoder = tiny_decoder(extra=overlap_factories(big_worker, 1024, {}))
    _, base = run(decoder, [5, 17, 230], method="ar", max_new_tokens=30)
    for method in ("draft", "tree", "pool", "jacobi"):
        _, spec = run(decoder, [5, 17, 230], method=method, draft_len=3, max_new_tokens=30)
        assert spec.token_ids == base.token_ids and not spec.overlapped


def law_coverage(drafted, draft_len):
    """Within the first 3 tokens: a 3-deep first draft can only be cut (the hedges and the
    discarded pre-drafts meet the law); a 1-deep one, fully accepted, leaves room for the main
    branch's reused tokens to be the 2nd and 3rd."""
    seen = coverage(drafted)
    assert cuts(seen, "hedge") and 0 in cuts(seen, ""), seen  # hedges hit, pre-drafts discarded
    if draft_len == 1:
        assert cuts(seen, "main"), seen
    else:
        assert {0, 1} <= cuts(seen, "") and any(missed for *_, missed in seen), seen
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("method,draft_len,temperature", [
    ("draft", 3, 1.0), ("draft", 1, 1.0), ("draft", 2, 0.8), ("tree", 2, 1.0), ("tree", 1, 1.0),
    ("inline-draft", 3, 1.0), ("pool", 1, 1.0), ("pool", 3, 1.0),
    # jacobi refines a block of one length: in 3-token runs only a 1-token draft is asked again
    # at the length it was refined ahead at (the pool keeps q by context, at any length)
    ("jacobi", 1, 1.0)])
def test_sampling_keeps_the_target_law(small_worker, method, draft_len, temperature):
    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5,
                           extra=overlap_factories(small_worker, VOCAB, TREE))
    # the pool starts empty every run, so its model drafts (a phrase it learned would stand in)
    reset = (lambda seed: decoder.reset()) if method == "pool" else None
    drafted = assert_law(decoder, method, PROMPT, m=3, n=1500, draft_len=draft_len,
                         temperature=temperature, overlap=True, before_run=reset)
    law_coverage(drafted, draft_len)
    assert sum(d.overlap.reused for d in drafted if d.overlap) > 100  # the law did rest on reused drafts


class StaleSpeculator(Speculator):
    """Broken on purpose: after every verdict it keeps the main branch drafted ahead, even when
    the verdict cut the proposal and so invalidated it (its rows were drawn after another
    context). The tokens proposed are then not draws from the q the verifier is given."""

    def settle(self, committed):
        main = next((b for b in self.branches if b.cut == len(self._last[1])), None) \
            if self._last else None
        self.matched = None if main is None else Branch(list(committed), main.cut, 1.0, main.rows)
        self.missed_hedge = False


@pytest.mark.slow
def test_kept_pre_drafts_after_an_invalidating_verdict_break_the_law():
    """The negative control: the law test above fails for this bug."""
    def extra(target, draft):
        return {"stale": lambda: InlineOverlap(StaleSpeculator(ModelDrafter(draft, VOCAB)))}

    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5, extra=extra)
    with pytest.raises(AssertionError, match="chi2"):
        assert_law(decoder, "stale", PROMPT, m=3, n=1500, draft_len=3, temperature=1.0, overlap=True)
