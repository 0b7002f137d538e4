"""Hybrid tree attention (hybrid_attention.py) equals the dense tree mask over a long prefix."""
import random

import pytest
import torch

from specscope.core.drafters.model import ModelDrafter
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.hybrid_attention import prefix_part
from specscope.core.lm import CachedLM
from specscope.core.tiny import tiny_model
from tests.core.helpers import model_greedy, run, tiny_decoder
from tests.core.test_drafter_common import one_thread  # noqa: F401

TREES = [
    [-1, -1, 0, 0, 1, 2, 4, -1],  # siblings at the root and below
    [-1, 0, 0, 1, 1, 2, 2],  # a binary tree
    [-1, -1, -1, -1],  # only the root's children
]


def long_ids(n, seed=1):
    rng = random.Random(seed)
    return [rng.randrange(1024) for _ in range(n)]


@pytest.mark.parametrize("parents", TREES)
def test_a_tree_pass_over_a_long_prefix_equals_the_dense_mask(parents, monkeypatch):
    from specscope.core import hybrid_attention

    calls = []
    real = hybrid_attention.prefix_part
    monkeypatch.setattr(hybrid_attention, "prefix_part",
                        lambda q, k, *a, **kw: calls.append(k.shape[2]) or real(q, k, *a, **kw))
    model = tiny_model("target", 3)  # 4 query heads over 2 key/value heads: grouped queries
    assert model.config.num_attention_heads > model.config.num_key_value_heads
    ids = long_ids(1500)
    tokens = long_ids(len(parents), seed=2)
    dense, hybrid = CachedLM(model), CachedLM(model)
    want = dense.forward_tree(ids, tokens, parents, dense=True)
    assert not calls
    got = hybrid.forward_tree(ids, tokens, parents)
    assert calls == [len(ids) - 1] * model.config.num_hidden_layers  # the prefix, unmasked
    assert got.dtype == torch.float32 and got.shape == (len(parents) + 1, dense.hidden_size)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    # the tree's keys and values went into the cache like the dense pass's: after keeping a
    # path, the next pass agrees too
    path = (1, 4) if parents == TREES[0] else (0,)
    for lm in (dense, hybrid):
        lm.keep_path(ids, tokens, path)
    nxt = ids + [tokens[i] for i in path] + [7]
    assert torch.allclose(hybrid.forward(nxt, 2), dense.forward(nxt, 2), atol=1e-5, rtol=1e-5)


def test_the_prefix_part_agrees_on_both_kernels():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 6, 16, generator=g)
    k, v = torch.randn(1, 2, 300, 16, generator=g), torch.randn(1, 2, 300, 16, generator=g)
    fast, fast_lse = prefix_part(q, k, v, 0.25, fast=True)
    slow, slow_lse = prefix_part(q, k, v, 0.25, fast=False)
    assert torch.allclose(fast, slow, atol=1e-5) and torch.allclose(fast_lse, slow_lse, atol=1e-4)
    want = torch.softmax(q @ k.transpose(-1, -2) * 0.25, -1) @ v
    assert torch.allclose(slow, want, atol=1e-5)


def test_greedy_trees_over_a_long_prompt_are_plain_greedy():
    def extra(target, draft):
        return {"tree": lambda: TreeDrafter(ModelDrafter(draft, target.vocab_size), width=2,
                                            branch_below=1.0, alt_len=2)}

    decoder = tiny_decoder(seed=4, extra=extra)
    prompt = long_ids(700, seed=5)
    want = tuple(model_greedy(decoder.target.model, prompt, 20))
    for k in (2, 4):
        _, spec = run(decoder, prompt, method="tree", draft_len=k, max_new_tokens=20)
        assert spec.token_ids == want
        assert spec.drafted > spec.steps * k  # trees, not chains, were verified
