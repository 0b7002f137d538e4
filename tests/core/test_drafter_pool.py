"""The phrase pool: bounded, counted, harvested from verified text, and exact."""
import pytest
import torch

from specscope.core.drafters.base import DrafterBase, Proposal
from specscope.core.drafters.model import ModelDrafter
from specscope.core.drafters.pool import PhrasePool, PoolDrafter
from specscope.core.events import Drafted
from specscope.core.sampling import Shaping
from tests.core.helpers import run, tiny_decoder
from tests.core.test_drafter_common import assert_law, greedy_matches_plain, one_thread  # noqa: F401


def pools(target, draft):
    return {"pool": lambda: PoolDrafter(ModelDrafter(draft, target.vocab_size))}


class Stub(DrafterBase):
    """A draft model that always proposes token 0 with q = uniform over 10 tokens."""

    target_vocab = 10

    def __init__(self):
        self.calls = 0

    def propose(self, ids, k, shaping, generator):
        self.calls += 1
        q = None if shaping.greedy else torch.full((1, 10), 0.1)
        return Proposal([0], [-1], [0.1], q)

    def read_params(self):
        return 7

    def feedback(self, ids, proposal, n_accepted):
        pass


def test_pool_memory_stays_bounded_and_forgets_the_least_recently_used():
    pool = PhrasePool(key_len=2, phrase_len=3, max_entries=5)
    pool.add(list(range(100)), 0)
    assert len(pool) == 5
    assert list(pool.phrases) == [(93, 94), (94, 95), (95, 96), (96, 97), (97, 98)]
    assert pool.phrases[(93, 94)] == (95, 96, 97) and pool.phrases[(97, 98)] == (99,)
    assert pool.lookup([1, 93, 94]) == (95, 96, 97)  # a hit makes the key recent again
    pool.add([7, 8, 9], 0)
    assert (93, 94) in pool.phrases and (94, 95) not in pool.phrases and len(pool) == 5
    # A phrase cut short by the end of the text does not replace the longer one it begins.
    pool.add([1, 93, 94, 95], 3)
    assert pool.phrases[(93, 94)] == (95, 96, 97)
    pool.add([1, 93, 94, 95, 5], 3)
    assert pool.phrases[(93, 94)] == (95, 5)


def test_hit_rate_is_counted_on_a_hand_made_sequence():
    stub = Stub()
    drafter = PoolDrafter(stub, key_len=2, phrase_len=3)
    greedy = Shaping()
    # Run 1, step 1: the pool is empty; three lookups miss and the model drafts three tokens.
    p = drafter.propose([1, 2, 3], 3, greedy, None)
    assert p.tokens == [0, 0, 0] and stub.calls == 3
    drafter.feedback([1, 2, 3, 7, 8], p, 0)  # the target wrote 7 8; harvest (2 3)->7 8, (3 7)->8
    assert drafter.pool.phrases == {(2, 3): (7, 8), (3, 7): (8,)}
    # Step 2: (7 8) misses, the model drafts 0; (8 0) misses, the model drafts 0 again.
    p = drafter.propose([1, 2, 3, 7, 8], 2, greedy, None)
    assert p.tokens == [0, 0] and stub.calls == 5
    drafter.feedback([1, 2, 3, 7, 8, 4], p, 0)
    assert drafter.pool.phrases[(3, 7)] == (8, 4) and drafter.pool.phrases[(7, 8)] == (4,)
    # Run 2 (a new prompt that ends like run 1's): the pool matches at once, no model call.
    p = drafter.propose([5, 2, 3], 3, greedy, None)
    assert p.tokens == [7, 8, 4] and stub.calls == 5  # the phrase of (2 3), grown to 3 tokens
    assert p.q is None and p.q_token == [None] * 3
    drafter.feedback([5, 2, 3, 7, 8, 9], p, 2)
    stats = drafter.stats()
    assert (stats["lookups"], stats["hits"]) == (3 + 2 + 1, 1)
    assert stats["hit_rate"] == pytest.approx(1 / 6)
    assert (stats["pool_drafted"], stats["pool_accepted"]) == (3, 2)
    assert stats["pool_acceptance"] == pytest.approx(2 / 3)
    assert drafter.pool.phrases == {(2, 3): (7, 8, 9), (3, 7): (8, 9), (7, 8): (9,)}
    assert stats["pool_size"] == 3
    assert drafter.read_params() == 7


def test_draft_tokens_keep_their_q_rows_and_pool_tokens_get_one_hot_rows():
    drafter = PoolDrafter(Stub(), key_len=1, phrase_len=2)
    drafter.pool.add([0, 5, 6], 1)  # (0,) -> 5 6, (5,) -> 6
    p = drafter.propose([3, 4], 4, Shaping(temperature=1.0), None)
    assert p.tokens == [0, 5, 6, 0]  # model, pool phrase, model again (no key for 6)
    assert p.q.shape == (4, 10) and p.q_token == [0.1, None, None, 0.1]
    assert torch.equal(p.q[0], torch.full((10,), 0.1)) and torch.equal(p.q[3], p.q[0])
    assert p.q[1, 5] == 1 and p.q[1].sum() == 1 and p.q[2, 6] == 1 and p.q[2].sum() == 1
    assert p.parents == [-1, 0, 1, 2]


@pytest.fixture(scope="module")
def decoder():
    return tiny_decoder(extra=pools)


@pytest.mark.parametrize("prompt", [[5, 17, 230, 41], [900, 3, 3, 3, 77, 12, 640, 11, 2], [100]])
def test_greedy_pool_equals_plain(decoder, prompt):
    specs = greedy_matches_plain(decoder, "pool", prompt, lengths=(1, 3, 5, 8))
    assert all(s.accepted > 0 for s in specs)


def test_the_pool_reuses_earlier_answers():
    decoder = tiny_decoder(extra=pools)
    first = greedy_matches_plain(decoder, "pool", [5, 17, 230, 41], lengths=(4,))[0]
    pool = decoder.drafter("pool")
    before = pool.stats()
    assert before["pool_accepted"] == 0 and before["pool_size"] > 30
    again = greedy_matches_plain(decoder, "pool", [5, 17, 230, 41], lengths=(4,))[0]
    after = pool.stats()
    assert after["hits"] > before["hits"] and after["pool_accepted"] > 10
    assert again.steps < first.steps  # whole phrases of the first answer were accepted


def test_eos_inside_a_pool_draft():
    prompt = [5, 17, 230, 41]
    _, base = run(tiny_decoder(), prompt, method="ar", max_new_tokens=40)
    eos = base.token_ids[12]
    stopper = tiny_decoder(eos_ids={eos}, extra=pools)
    _, plain = run(stopper, prompt, method="ar", max_new_tokens=40)
    assert plain.stop_reason == "eos"
    # Fill the pool with this text continued past the EOS (as if it had not been one).
    stopper.drafter("pool").pool.add(list(prompt) + list(base.token_ids), len(prompt))
    covered = False
    for k in range(1, 9):
        events, spec = run(stopper, prompt, method="pool", draft_len=k, max_new_tokens=40)
        assert spec.token_ids == plain.token_ids and spec.stop_reason == "eos"
        covered |= any(eos in e.tokens[:-1] for e in events if isinstance(e, Drafted))
    assert covered


def sampling_decoder():
    return tiny_decoder(vocab_size=6, seed=2, init=0.15, later_scale=0.5, extra=pools)


def start_without_the_pool(decoder):
    """On odd seeds drop the pool's phrase for the prompt's end, so that the draft model starts
    and pool phrases extend its chain (mixed q rows); on even seeds the pool proposes alone."""
    def before_run(seed):
        if seed % 2:
            decoder.drafter("pool").pool.phrases.pop((4, 2), None)
    return before_run


@pytest.mark.slow
def test_sampling_with_the_pool_follows_the_target():
    decoder = sampling_decoder()
    drafted = assert_law(decoder, "pool", [1, 4, 2], m=3, n=3000, draft_len=3,
                         before_run=start_without_the_pool(decoder))
    kinds = [tuple(q is None for q in d.q) for d in drafted if d.tokens]
    assert any(all(k) for k in kinds)  # pool-only proposals
    assert any(not k[0] and any(k) for k in kinds)  # draft model first, then a pool phrase


@pytest.mark.slow
def test_a_made_up_q_row_for_pool_tokens_is_caught(monkeypatch):
    """Sanity check of the test itself: pool tokens are not sampled from any distribution, so
    giving them a uniform q row (instead of one-hot) accepts them too often and must fail.
    (Dropping the draft model's rows, q=None, would stay exact, only accept less.)"""
    import specscope.core.drafters.pool as pool_module

    def uniform_pool_rows(tokens, rows, vocab):
        return torch.stack([torch.full((vocab,), 1 / vocab) if r is None else r for r in rows])

    monkeypatch.setattr(pool_module, "_mix_q", uniform_pool_rows)
    decoder = sampling_decoder()
    with pytest.raises(AssertionError, match="chi2"):
        assert_law(decoder, "pool", [1, 4, 2], m=3, n=3000, draft_len=3,
                   before_run=start_without_the_pool(decoder))
