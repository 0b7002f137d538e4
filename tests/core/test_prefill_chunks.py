"""Chunked prefill: the same cache and the same output as one pass, with progress between chunks."""
import pytest
import torch

from specscope.core.controls import Controls
from specscope.core.drafters.layerskip import LayerSkipDrafter
from specscope.core.events import Drafted, Prefilling, Started
from specscope.core.lm import CachedLM, read_in_chunks
from specscope.core.tiny import tiny_model
from tests.core.helpers import run, tiny_decoder

PROMPT = [(7 * i * i + 3 * i + 5) % 1000 for i in range(61)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def chunked(decoder, size):
    decoder.target.prefill_chunk = size
    for method in decoder.methods:
        lm = getattr(decoder.drafter(method), "lm", None)
        if isinstance(lm, CachedLM):
            lm.prefill_chunk = size
    return decoder


def with_layerskip(target, draft):
    return {"layerskip": lambda: LayerSkipDrafter(target, [2], adaptive=False)}


def test_chunked_prefill_leaves_the_cache_of_one_pass():
    model = tiny_model("target", seed=2)
    whole, parts = CachedLM(model), CachedLM(model)
    parts.prefill_chunk = 8
    start, h_whole = whole.prefill(PROMPT)
    chunks = list(parts.prefill_chunks(PROMPT))
    assert [s for s, _ in chunks] == list(range(0, len(PROMPT), 8))  # 8 passes, not one
    h_parts = torch.cat([h for _, h in chunks])
    assert start == 0 and h_parts.shape == h_whole.shape
    assert torch.allclose(h_parts, h_whole, rtol=1e-5, atol=1e-5)
    assert parts.ids == whole.ids == PROMPT
    for a, b in zip(parts.cache.layers, whole.cache.layers):
        assert a.keys.shape == b.keys.shape
        assert torch.allclose(a.keys, b.keys, rtol=1e-5, atol=1e-5)
        assert torch.allclose(a.values, b.values, rtol=1e-5, atol=1e-5)
    # forward() reads long inputs in chunks too, with the same last hidden states
    fresh = CachedLM(model)
    fresh.prefill_chunk = 8
    assert torch.allclose(fresh.forward(PROMPT, 3), h_whole[-3:], rtol=1e-5, atol=1e-5)


def test_a_stopped_prefill_keeps_the_chunks_it_read():
    lm = CachedLM(tiny_model("target", seed=2))
    lm.prefill_chunk = 10
    steps = lm.prefill_chunks(PROMPT)
    next(steps)
    next(steps)
    steps.close()
    assert lm.ids == PROMPT[:20] and lm.cache.get_seq_length() == 20
    start, hidden = lm.prefill(PROMPT)  # carries on from there
    assert start == 20 and len(hidden) == len(PROMPT) - 20


@pytest.mark.parametrize("method", ["ar", "draft", "layerskip"])
def test_greedy_output_does_not_depend_on_the_chunk_size(method):
    _, whole = run(tiny_decoder(seed=3, extra=with_layerskip), PROMPT, method=method,
                   draft_len=4, max_new_tokens=24)
    decoder = chunked(tiny_decoder(seed=3, extra=with_layerskip), 8)
    events, parts = run(decoder, PROMPT, method=method, draft_len=4, max_new_tokens=24)
    assert parts.token_ids == whole.token_ids
    if method != "ar":
        assert 0 < parts.accepted < parts.drafted  # acceptance and rejection both happened


def test_progress_events_for_the_target_then_the_drafter():
    decoder = chunked(tiny_decoder(seed=3), 16)
    events, summary = run(decoder, PROMPT, method="draft", draft_len=3, max_new_tokens=12)
    kinds = [type(e).__name__ for e in events]
    first_started, first_drafted = kinds.index("Started"), kinds.index("Drafted")
    target = [e for e in events[:first_started] if isinstance(e, Prefilling)]
    draft = [e for e in events[first_started:first_drafted] if isinstance(e, Prefilling)]
    assert len(target) == first_started  # nothing else comes before Started
    total = len(PROMPT) - 1  # the last prompt token is fed with the first draft
    assert [(e.model, e.done) for e in target] == [("target", d) for d in (0, 16, 32, 48, 60)]
    assert [(e.model, e.done) for e in draft] == [("draft", d) for d in (0, 16, 32, 48, 60)]
    assert {e.total for e in target + draft} == {total}
    # later steps read a short gap in their own pass: no more progress
    assert not any(isinstance(e, Prefilling) for e in events[first_drafted:])
    drafted = [e for e in events if isinstance(e, Drafted)]
    assert drafted[0].prefill_s > 0 and all(d.prefill_s == 0 for d in drafted[1:])
    assert drafted[0].draft_s >= drafted[0].prefill_s
    assert summary.draft_prefill_s == drafted[0].prefill_s


def test_short_prompts_yield_no_progress():
    events, _ = run(tiny_decoder(seed=3), PROMPT, method="draft", draft_len=3, max_new_tokens=6)
    assert isinstance(events[0], Started)
    assert not any(isinstance(e, Prefilling) for e in events)


def test_a_conversation_reports_only_what_is_new():
    decoder = chunked(tiny_decoder(seed=3), 16)
    _, first = run(decoder, PROMPT[:20], method="ar", max_new_tokens=4)
    follow = PROMPT[:20] + list(first.token_ids) + PROMPT[20:]
    events = list(decoder.run(follow, Controls(method="ar", max_new_tokens=4)))
    target = [e for e in events if isinstance(e, Prefilling)]
    assert target[0].done == 23 and target[-1].done == target[-1].total == len(follow) - 1


def test_read_in_chunks_leaves_a_short_gap_alone():
    lm = CachedLM(tiny_model("draft", seed=2))
    lm.forward(PROMPT[:30], 0)
    assert list(read_in_chunks(lm, PROMPT[:35], 8)) == []  # one pass: the caller's own forward
    assert lm.ids == PROMPT[:30]
    assert list(read_in_chunks(lm, PROMPT, 8)) == [(30, 61), (38, 61), (46, 61), (54, 61), (61, 61)]
    assert lm.ids == PROMPT and lm.cache.get_seq_length() == 61


def test_stopping_during_the_prefill_then_running_again():
    decoder = chunked(tiny_decoder(seed=3), 16)
    stream = decoder.run(PROMPT, Controls(method="draft", draft_len=3, max_new_tokens=8))
    assert isinstance(next(stream), Prefilling)
    next(stream)  # one chunk read
    stream.close()
    _, again = run(decoder, PROMPT, method="draft", draft_len=3, max_new_tokens=8)
    _, fresh = run(tiny_decoder(seed=3), PROMPT, method="draft", draft_len=3, max_new_tokens=8)
    assert again.token_ids == fresh.token_ids


def test_mtp_sees_the_target_hidden_states_chunk_by_chunk():
    from tests.core.test_mtp_drafter import mtp_decoder

    def drafts(decoder):
        drafter = decoder.drafter("mtp")
        check, short = drafter._check_hidden, []

        def spy(ids, n):  # the drafter recomputes what it was not handed: it must not need to
            good = check(ids, n)
            short.append(good < n)
            return good

        drafter._check_hidden = spy
        events, summary = run(decoder, PROMPT, method="mtp", draft_len=3, max_new_tokens=16)
        assert short and not any(short)
        return [e.tokens for e in events if isinstance(e, Drafted)], summary.token_ids

    whole = drafts(mtp_decoder(seed=3, noise_seed=1))
    parts = drafts(chunked(mtp_decoder(seed=3, noise_seed=1), 8))
    assert parts == whole and any(whole[0])
