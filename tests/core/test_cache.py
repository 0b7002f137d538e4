"""KV cache rollback leaves the cache as a fresh pass over the kept tokens would."""
import torch

from specscope.core.lm import CachedLM
from specscope.core.tiny import tiny_model


def fresh_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def test_rollback_after_rejection_matches_fresh_pass():
    model = tiny_model("target", seed=1)
    lm = CachedLM(model)
    prompt = [3, 14, 15, 92, 65]
    lm.forward(prompt[:-1], 0)
    # a step that drafted 4 tokens, of which 1 was accepted; then the target's token 7
    lm.forward(prompt + [35, 89, 79, 32], 5)
    kept = prompt + [35, 7]
    h = lm.forward(kept + [38, 46], 3)
    assert lm.cache.get_seq_length() == len(kept) + 2
    got = lm.logits(h)
    want = fresh_logits(model, kept + [38, 46])[-3:]
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-3)


def test_switching_to_an_unrelated_context_resets():
    model = tiny_model("target", seed=1)
    lm = CachedLM(model)
    lm.forward([1, 2, 3, 4], 1)
    h = lm.forward([9, 8, 7], 2)
    assert torch.allclose(lm.logits(h), fresh_logits(model, [9, 8, 7])[-2:], rtol=1e-4, atol=1e-3)


def test_both_caches_consistent_after_a_speculative_run():
    """After a run, continuing from the committed ids gives fresh-pass logits for both models."""
    from tests.core.helpers import run, tiny_decoder

    decoder = tiny_decoder(seed=4)
    prompt = [5, 6, 7, 8]
    events, summary = run(decoder, prompt, method="draft", draft_len=5, max_new_tokens=25)
    assert summary.drafted > summary.accepted  # there were rejections to roll back
    ids = prompt + list(summary.token_ids)
    for lm in (decoder.target, decoder.drafter("draft").lm):
        assert lm.ids[: len(ids) - 1] == ids[: len(lm.ids)][: len(ids) - 1]
        h = lm.forward(ids + [11], 2)
        assert torch.allclose(lm.logits(h), fresh_logits(lm.model, ids + [11])[-2:], rtol=1e-4, atol=1e-3)
