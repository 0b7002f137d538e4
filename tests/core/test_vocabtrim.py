"""VocabTrim: ranking, artifact, exact drafting over a trimmed head."""
from collections import Counter

import pytest
import torch

from specscope.core.controls import Controls
from specscope.core.drafters.model import ModelDrafter, RankedHead
from specscope.core.errors import SpecScopeError
from specscope.core.events import Drafted
from specscope.core.vocab import coverage, count_tokens, rank_tokens
from tests.core.helpers import run, tiny_decoder


def trimmed_factory(ranking, k):
    def extra(target, draft):
        return {"trimmed": lambda: ModelDrafter(draft, target.vocab_size, RankedHead(draft, ranking, k))}
    return extra


def calibrated_ranking(decoder, vocab_size):
    """Rank by the target's own greedy answers on a few prompts, like `specscope trim`."""
    seqs = [run(decoder, p, method="ar", max_new_tokens=60)[1].token_ids
            for p in ([1, 2, 3], [40, 41], [500, 7, 9, 300])]
    return torch.tensor(rank_tokens(count_tokens(seqs), vocab_size, [0, 2]))


def test_ranking_matches_a_hand_count():
    # calibration text as ids: 7 x3, 4 x2, 9 x2, 1 x1 ; special ids 0 and 5 always first
    counts = count_tokens([[7, 4, 7, 9], [9, 7, 4, 1]])
    assert counts == Counter({7: 3, 4: 2, 9: 2, 1: 1})
    ranking = rank_tokens(counts, 10, always_keep=[5, 0])
    # specials by id, then by count desc, ties by id asc, then unseen ids ascending
    assert ranking == [0, 5, 7, 4, 9, 1, 2, 3, 6, 8]
    assert coverage(counts, ranking[:4]) == pytest.approx(5 / 8)  # 7 and 4 kept


@pytest.mark.parametrize("k", [40, 200, 700])
def test_trimmed_greedy_equals_plain(k):
    base_dec = tiny_decoder()
    ranking = calibrated_ranking(base_dec, 1024)
    decoder = tiny_decoder(extra=trimmed_factory(ranking, k))
    for prompt in ([5, 17, 230, 41], [900, 3, 3, 3, 77]):
        _, plain = run(decoder, prompt, method="ar", max_new_tokens=40)
        for draft_len in (1, 3, 6):
            events, spec = run(decoder, prompt, method="trimmed", draft_len=draft_len, max_new_tokens=40)
            assert spec.token_ids == plain.token_ids
            kept = set(ranking[:k].tolist())
            assert all(t in kept for e in events if isinstance(e, Drafted) for t in e.tokens)


def test_trimmed_draft_has_smaller_param_ratio_and_still_accepts():
    base = tiny_decoder()
    ranking = calibrated_ranking(base, 1024)
    decoder = tiny_decoder(extra=trimmed_factory(ranking, 100))
    _, full = run(decoder, [5, 17, 230, 41], method="draft", draft_len=4, max_new_tokens=60)
    _, trim = run(decoder, [5, 17, 230, 41], method="trimmed", draft_len=4, max_new_tokens=60)
    assert trim.param_ratio < full.param_ratio
    assert trim.accepted > 0


def test_live_vocab_size_changes_at_next_step():
    base = tiny_decoder()
    ranking = calibrated_ranking(base, 1024)
    decoder = tiny_decoder(extra=trimmed_factory(ranking, 700))
    controls = Controls(method="trimmed", draft_len=4, max_new_tokens=80)
    ratios = []
    seen_tokens_after = []
    for event in decoder.run([5, 17, 230, 41], controls):
        if isinstance(event, Drafted):
            ratios.append(decoder.param_ratio(decoder.drafter("trimmed")))
            if event.step == 2:
                controls.vocab_top_k = 20
            elif event.step > 2:
                seen_tokens_after.extend(event.tokens)
    assert ratios[0] > ratios[-1]
    assert set(seen_tokens_after) <= set(ranking[:20].tolist())


def test_vocab_top_k_out_of_range_is_refused():
    ranking = torch.arange(1024)
    decoder = tiny_decoder(extra=trimmed_factory(ranking, 100))
    with pytest.raises(SpecScopeError, match="vocab top-k"):
        run(decoder, [1, 2], method="trimmed", vocab_top_k=5000, max_new_tokens=5)
    with pytest.raises(SpecScopeError, match="trimmed head"):
        run(decoder, [1, 2], method="draft", vocab_top_k=50, max_new_tokens=5)


@pytest.mark.slow
def test_trimmed_sampling_preserves_target_distribution():
    from tests.core.test_distribution import VOCAB, assert_follows_target

    # keep 3 of 6 tokens: q is zero on the other three, p is not
    ranking = torch.tensor([3, 0, 4, 1, 2, 5])
    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5,
                           extra=trimmed_factory(ranking, 3))
    counts = assert_follows_target(decoder, "trimmed", n=1500)
    assert counts[[1, 2, 5]].sum() > 0  # tokens the drafter cannot propose still appear
