"""Tree drafting: the mask, the cache after a tree step, exactness (greedy and sampling)."""
import pytest
import torch

from specscope.core.controls import Controls
from specscope.core.drafters.model import ModelDrafter
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.events import Drafted, Verified
from specscope.core.lm import CachedLM
from specscope.core.tiny import tiny_model
from specscope.core.tree import ancestors_mask, depths, is_chain, tree_positions
from specscope.core.verify import greedy_verify_tree, sample_verify_tree
from tests.core.helpers import run, tiny_decoder


def tree_factory(**kw):
    def extra(target, draft):
        return {"tree": lambda: TreeDrafter(ModelDrafter(draft, target.vocab_size), **kw)}
    return extra


def test_mask_matches_a_hand_built_one():
    #        root
    #       /    \
    #      0      1
    #     / \      \
    #    2   3      4
    parents = [-1, -1, 0, 0, 1]
    want = torch.tensor([
        # r  0  1  2  3  4
        [1, 0, 0, 0, 0, 0],  # root
        [1, 1, 0, 0, 0, 0],  # 0
        [1, 0, 1, 0, 0, 0],  # 1
        [1, 1, 0, 1, 0, 0],  # 2
        [1, 1, 0, 0, 1, 0],  # 3
        [1, 0, 1, 0, 0, 1],  # 4
    ], dtype=torch.bool)
    assert torch.equal(ancestors_mask(parents), want)
    assert depths(parents) == [0, 0, 1, 1, 1]
    assert tree_positions(parents, 10).tolist() == [[10, 11, 11, 12, 12, 12]]
    assert is_chain([-1, 0, 1]) and not is_chain(parents)


def test_greedy_tree_verify_follows_the_target():
    parents = [-1, -1, 0, 0, 1]
    tokens = [7, 8, 3, 4, 5]
    # target wants 8 after the root, then 5 after node 1 (token 8), then 9 after node 4
    argmax = [8, 0, 5, 0, 0, 9]
    v = greedy_verify_tree(tokens, parents, argmax)
    assert v.path == (1, 4) and v.token == 9
    v = greedy_verify_tree(tokens, parents, [6, 0, 0, 0, 0, 0])
    assert v.path == () and v.token == 6


def test_sampling_tree_tries_the_second_child_after_the_first_is_rejected():
    # two children of the root with one-hot q: token 0 has p = 0, so it is always rejected and the
    # second child (token 1, p = 1 after the residual) is always accepted.
    parents, tokens = [-1, -1], [0, 1]
    p = torch.tensor([[0.0, 1.0, 0.0], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]])
    for seed in range(10):
        v = sample_verify_tree(tokens, parents, p, None, torch.Generator().manual_seed(seed))
        assert v.path == (1,)


def test_cache_after_a_tree_step_equals_a_fresh_pass_over_the_accepted_path():
    model = tiny_model("target", seed=5)
    lm = CachedLM(model)
    ids = [4, 8, 15, 16, 23]
    parents, tokens = [-1, -1, 0, 0, 1, 4], [42, 43, 44, 45, 46, 47]
    hidden = lm.forward_tree(ids, tokens, parents)
    # the tree pass itself gives, for every node, the logits a plain pass over its path gives
    with torch.no_grad():
        for node, path in [(2, [42, 44]), (5, [43, 46, 47])]:
            want = model(torch.tensor([ids + path])).logits[0, -1]
            assert torch.allclose(lm.logits(hidden[node + 1]), want, rtol=1e-4, atol=1e-3)
    lm.keep_path(ids, tokens, (1, 4))
    assert lm.ids == ids + [43, 46] and lm.cache.get_seq_length() == len(ids) + 2
    h = lm.forward(ids + [43, 46, 99], 2)
    with torch.no_grad():
        want = model(torch.tensor([ids + [43, 46, 99]])).logits[0, -2:]
    assert torch.allclose(lm.logits(h), want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape", [dict(), dict(width=3, branch_below=1.0, alt_len=1),
                                   dict(width=2, branch_below=0.9, alt_len=3)])
def test_tree_greedy_equals_plain(shape):
    decoder = tiny_decoder(extra=tree_factory(**shape))
    saw_tree = False
    for prompt in ([5, 17, 230, 41], [900, 3, 3, 3, 77, 12]):
        _, plain = run(decoder, prompt, method="ar", max_new_tokens=40)
        for k in (2, 4, 6):
            events, spec = run(decoder, prompt, method="tree", draft_len=k, max_new_tokens=40)
            assert spec.token_ids == plain.token_ids, (shape, k)
            drafted = [e for e in events if isinstance(e, Drafted)]
            verified = [e for e in events if isinstance(e, Verified)]
            saw_tree |= any(not is_chain(d.parents) for d in drafted)
            # an accepted off-chain node proves the tree itself paid off at least once
            for d, v in zip(drafted, verified):
                assert sum(v.accepted) == v.n_accepted or v.emitted[-1] in decoder.eos_ids
    assert saw_tree


def test_tree_with_eos_inside_stops_like_plain():
    base = tiny_decoder()
    _, ref = run(base, [5, 17, 230, 41], method="ar", max_new_tokens=40)
    eos = ref.token_ids[9]
    decoder = tiny_decoder(eos_ids={eos}, extra=tree_factory(branch_below=1.0))
    _, plain = run(decoder, [5, 17, 230, 41], method="ar", max_new_tokens=40)
    for k in (3, 5):
        _, spec = run(decoder, [5, 17, 230, 41], method="tree", draft_len=k, max_new_tokens=40)
        assert spec.token_ids == plain.token_ids and spec.stop_reason == "eos"


@pytest.mark.slow
def test_tree_sampling_preserves_target_distribution():
    from tests.core.test_distribution import VOCAB, assert_follows_target

    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5,
                           extra=tree_factory(width=3, branch_below=1.0, alt_len=2))
    assert_follows_target(decoder, "tree", draft_len=3, n=1500)



def test_a_fully_accepted_chain_through_the_tree_pass_keeps_the_targets_cache():
    # Over prefill_chunk (512) tokens of context a chain is verified by forward_tree/keep_path.
    # With the drafter = the target every node is accepted, so keep_path has nothing to drop:
    # a crop(0) there empties the cache on transformers 4.5x ("keep 0 tokens"), and the steps
    # after it decode from a cache without the context.
    from specscope.core.engine import SpecDecoder
    from tests.core.helpers import IdTokenizer, model_greedy

    target = CachedLM(tiny_model("target", seed=0))
    same = CachedLM(target.model, check=False)  # the target's weights, its own cache
    decoder = SpecDecoder(target, IdTokenizer(),
                          {"self": lambda: ModelDrafter(same, target.vocab_size)}, set())
    prompt = [(7 * i + 3) % 1000 + 3 for i in range(target.prefill_chunk + 60)]
    want = model_greedy(target.model, prompt, 24)
    events, got = run(decoder, prompt, method="self", draft_len=4, max_new_tokens=24)
    assert list(got.token_ids) == want
    full = [v for v in events if isinstance(v, Verified) and v.bonus and len(v.accepted) == 4]
    assert len(full) >= 2  # full acceptances through the tree pass, with steps after them
    # and directly: a fully accepted chain leaves the context, the root and the chain cached
    ids = prompt + list(got.token_ids)
    target.forward_tree(ids, [5, 6, 7], [-1, 0, 1])
    target.keep_path(ids, [5, 6, 7], (0, 1, 2))
    assert target.cache.get_seq_length() == len(ids) + 3 == len(target.ids)
