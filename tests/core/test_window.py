"""The bounded drafter cache (window.py): sinks + a sliding window, with rollback.

Exactness does not depend on what the drafter conditions on, so these tests check what could go
wrong: which token sits at which position in the cache after evictions and rollbacks (layer 0's
keys and values depend only on the token and its position, so they can be recomputed), that the
cache stays within its bound, and that greedy output and the sampling law stay the target's with
a window smaller than the prompt."""
import pytest
import torch
from transformers import DynamicCache

from specscope.core.controls import Controls
from specscope.core.drafters.jacobi import CausalRefiner, JacobiDrafter
from specscope.core.drafters.model import ModelDrafter
from specscope.core.drafters.pool import PoolDrafter
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.events import Verified
from specscope.core.lm import CachedLM, with_cache
from specscope.core.tiny import tiny_model
from specscope.core.window import WindowedLM, cache_bytes
from tests.core.helpers import model_greedy, run, tiny_decoder
from tests.core.test_drafter_common import assert_law, one_thread  # noqa: F401

METHODS = ("wdraft", "wtree", "wpool", "wjacobi")
PROMPT = [(7 * i * i + 3 * i + 11) % 1000 + 3 for i in range(40)]  # 40 tokens, fixed


def windowed(sinks=4, vocab=None, tree_kw=None):
    """Extra drafters for tiny_decoder, all drafting through one WindowedLM."""
    box = {}

    def extra(target, draft):
        lm = box["lm"] = WindowedLM(draft.model, check=False, sinks=sinks)
        v = vocab or target.vocab_size

        def model():
            return ModelDrafter(lm, v)

        kw = tree_kw or dict(width=2, branch_below=1.0, alt_len=2)
        return {"wdraft": model, "wtree": lambda: TreeDrafter(model(), **kw),
                "wpool": lambda: PoolDrafter(model()),
                "wjacobi": lambda: JacobiDrafter(CausalRefiner(model()), refine_steps=2)}
    return extra, box


def kept_positions(lm: WindowedLM) -> list[int]:
    n = len(lm.ids)
    return list(range(min(lm.sinks, n))) + list(range(max(lm.sinks, lm.gap_end), n))


@torch.no_grad()
def assert_cache_holds_its_positions(lm: WindowedLM) -> None:
    """Layer 0's keys (rotated by position) and values (the token's) equal a fresh pass over
    the kept tokens at their original positions: the bookkeeping is right."""
    kept = kept_positions(lm)
    assert lm.cache.get_seq_length() == len(kept) == lm.entries
    fresh = DynamicCache(config=lm.config)
    lm.base(input_ids=torch.tensor([[lm.ids[p] for p in kept]]), position_ids=torch.tensor([kept]),
            use_cache=True, **with_cache(lm.base, fresh))
    mine = lm.cache.layers[0]
    assert torch.allclose(mine.keys, fresh.layers[0].keys, atol=1e-5)
    assert torch.allclose(mine.values, fresh.layers[0].values, atol=1e-5)


def record_sizes(lm: WindowedLM) -> list[int]:
    """Cache entries after every pass of lm (the bound must hold mid-proposal too)."""
    sizes, feed = [], lm._feed

    def recorded(ids, n_last):
        out = feed(ids, n_last)
        sizes.append(lm.cache.get_seq_length())
        return out

    lm._feed = recorded
    return sizes


def test_a_window_wider_than_the_context_is_the_plain_cache():
    model = tiny_model("draft", 0)
    plain, wide = CachedLM(model), WindowedLM(model, window=1000)
    for req in (PROMPT, PROMPT + [5, 6, 7], PROMPT + [5, 9], PROMPT + [5, 9, 11, 12, 13]):
        assert torch.equal(plain.forward(req, 2), wide.forward(req, 2))
    assert wide.gap == 0 and cache_bytes(wide.cache) == cache_bytes(plain.cache) > 0


@torch.no_grad()
def test_a_long_prompt_feeds_only_the_sinks_and_the_window():
    model = tiny_model("draft", 0)
    lm = WindowedLM(model, window=8, sinks=4)
    h = lm.forward(PROMPT, 1)
    kept = list(range(4)) + list(range(32, 40))
    want = model.model(input_ids=torch.tensor([[PROMPT[i] for i in kept]]),
                       position_ids=torch.tensor([kept])).last_hidden_state[0, -1]
    assert torch.allclose(h[-1], want, atol=1e-5)
    assert lm.entries == 12 and lm.gap_end == 32
    assert_cache_holds_its_positions(lm)


@pytest.mark.parametrize("method", METHODS)
def test_the_cache_stays_bounded_and_in_step_through_rejections(method):
    extra, box = windowed(sinks=4)
    decoder = tiny_decoder(seed=4, extra=extra)
    decoder.drafter(method)  # builds it (and the shared WindowedLM)
    lm = box["lm"]
    sizes = record_sizes(lm)
    k, window = 4, 24
    evicted = 0
    for event in decoder.run(PROMPT, Controls(method=method, draft_len=k, max_new_tokens=50,
                                              draft_window=window)):
        if isinstance(event, Verified):
            evicted = max(evicted, lm.gap)
            assert_cache_holds_its_positions(lm)
    summary = event.summary
    assert summary.drafted > summary.accepted > 0  # rejections were rolled back
    assert evicted > 0 and len(lm.ids) > len(PROMPT) + 40
    assert max(sizes) <= lm.sinks + window + k + 1  # sinks + window + the draft in flight
    assert summary.kv_draft_bytes == max(cache_bytes(lm.cache), summary.kv_draft_bytes) > 0


def test_a_rollback_into_the_evicted_middle_restarts_the_cache():
    lm = WindowedLM(tiny_model("draft", 0), window=8, sinks=4)
    lm.forward(PROMPT, 1)
    changed = PROMPT[:10] + [99] + PROMPT[11:]  # position 10 was evicted
    lm.forward(changed + [5], 1)
    assert lm.ids == changed + [5]
    assert_cache_holds_its_positions(lm)
    lm.set_window(0)  # unbounded again: the evicted middle must come back
    lm.forward(changed + [5, 6], 1)
    assert lm.gap == 0 and lm.entries == len(changed) + 2
    assert_cache_holds_its_positions(lm)


@pytest.mark.parametrize("method", METHODS)
def test_greedy_with_a_small_window_is_plain_greedy(method):
    extra, box = windowed(sinks=4)
    decoder = tiny_decoder(seed=4, extra=extra)
    want = tuple(model_greedy(decoder.target.model, PROMPT, 30))
    _, plain = run(decoder, PROMPT, method="ar", max_new_tokens=30)
    assert plain.token_ids == want
    for k in (1, 3, 5):
        decoder.reset()  # a pool would otherwise draft the whole answer from the last run
        _, spec = run(decoder, PROMPT, method=method, draft_len=k, max_new_tokens=30,
                      draft_window=6)
        assert spec.token_ids == want, f"{method} k={k}"
        assert box["lm"].gap > 0  # the window did bound the drafter's cache
        assert spec.drafted > spec.accepted  # and rejections were rolled back


VOCAB = 6
LAW_PROMPT = [1, 4, 2, 5, 0, 3, 3, 1, 4]  # longer than 2 sinks + a window of 3


@pytest.mark.parametrize("method", ["wdraft", "wtree"])
@pytest.mark.slow
def test_the_sampling_law_holds_with_a_window_smaller_than_the_prompt(method):
    extra, box = windowed(sinks=2, vocab=VOCAB, tree_kw=dict(width=2, branch_below=1.0, alt_len=3))
    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5, extra=extra)
    decoder.drafter(method)
    gaps = []
    feed = box["lm"]._feed

    def watched(ids, n_last):
        out = feed(ids, n_last)
        gaps.append(box["lm"].gap)
        return out

    box["lm"]._feed = watched
    drafted = assert_law(decoder, method, LAW_PROMPT, m=3, n=1500, draft_len=3, temperature=1.0,
                         draft_window=3)
    assert max(gaps) > 0  # the drafter did draft from a bounded cache
    assert max(len(d.tokens) for d in drafted if d.step == 0) >= 3


def test_contiguous_positions_rerotate_the_window_keys():
    """LongSpec-style re-indexing: after evictions a token's position is its cache index, and
    the window's keys were rotated back to match (float32: equal up to rounding)."""
    lm = WindowedLM(tiny_model("draft", 0), window=8, sinks=4, positions="contiguous")
    ids = list(PROMPT)
    lm.forward(ids, 1)  # a long request: sinks + the last 8 at positions 0..11
    for t in range(30):  # grow one token at a time: evictions re-rotate the kept window
        ids.append(t + 3)
        lm.forward(ids, 1)
    assert lm.gap > 0 and lm.entries <= 4 + 8 + 1
    kept = kept_positions(lm)
    with torch.no_grad():
        fresh = DynamicCache(config=lm.config)
        lm.base(input_ids=torch.tensor([[lm.ids[p] for p in kept]]), use_cache=True,
                **with_cache(lm.base, fresh))  # positions 0, 1, 2, ...: the cache indices
    assert torch.allclose(lm.cache.layers[0].keys, fresh.layers[0].keys, atol=1e-4)
    assert torch.allclose(lm.cache.layers[0].values, fresh.layers[0].values, atol=1e-5)
    # and the same run with original positions differs (the test can tell them apart)
    orig = WindowedLM(lm.model, window=8, sinks=4)
    for n in range(len(PROMPT), len(ids) + 1):
        orig.forward(ids[:n], 1)
    assert not torch.allclose(orig.cache.layers[0].keys, fresh.layers[0].keys, atol=1e-2)


def test_a_bounded_drafter_reads_a_long_prompt_in_one_pass_over_sinks_and_window():
    """The drafter's prefill (Drafter.prefill -> lm.read) must not read the whole context in
    chunks: one pass over sinks + window, reported as one progress step."""
    lm = WindowedLM(tiny_model("draft", 0).eval(), check=False, window=24)
    lm.prefill_chunk = 8
    prompt = [(5 * i + 1) % 900 + 3 for i in range(200)]
    fed = []
    hook = lm.base.register_forward_pre_hook(lambda mod, args, kw: fed.append(kw["input_ids"].shape[1]),
                                             with_kwargs=True)
    assert list(ModelDrafter(lm, lm.vocab_size).prefill(prompt)) == [(0, 200), (200, 200)]
    hook.remove()
    assert fed == [4 + 24] and lm.entries == 28 and lm.ids == prompt
    unbounded = WindowedLM(tiny_model("draft", 0).eval(), check=False, window=0)
    unbounded.prefill_chunk = 8
    assert len(list(unbounded.read(prompt))) == 1 + 200 // 8  # the chunked read, as before


def test_the_tree_pass_is_refused_once_the_window_has_evicted():
    # forward_tree/keep_path put the tree after the cache's last entry and give positions by
    # cache index: with the middle evicted those are not the tokens' positions
    from specscope.core.errors import SpecScopeError

    model = tiny_model("target", 1)
    lm, plain = WindowedLM(model, window=8), CachedLM(model)
    short = [3, 14, 15, 92, 65]
    got = lm.forward_tree(short, [7, 8], [-1, 0])  # nothing evicted yet: CachedLM's pass
    torch.testing.assert_close(got, plain.forward_tree(short, [7, 8], [-1, 0]))
    lm.keep_path(short, [7, 8], (0,))
    assert lm.ids == short + [7]
    ids = list(range(3, 43))
    with pytest.raises(SpecScopeError, match="evicted"):
        lm.forward_tree(ids, [7, 8], [-1, 0])
    assert lm.gap > 0
