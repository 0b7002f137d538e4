"""The llama.cpp backend (core/llamacpp.py) on GGUF files the tests write: rollback to every
length, tree passes against one-sequence-at-a-time passes, greedy identity with the backend's
own plain decoding for every logits-only method, and the torch model's logits from the same
weights. Skipped without llama-cpp-python, except in CI (tests/core/llamacpp_helpers.py)."""
import pytest
import torch

from specscope.core.tree import ancestors, depths
from tests.core.helpers import run
from tests.core.llamacpp_helpers import llama_decoder, llama_lm, need_binding, write_pair

need_binding()

IDS = list(range(3, 45))
TREES = [  # (parents, tokens): siblings at the root and below it, a chain, a lone node
    ([-1, -1, 0, 0, 1, 2, 2, 5], [5, 6, 7, 8, 9, 10, 11, 12]),
    ([-1, 0, 1, 1, 2, 3, 3, -1], [40, 41, 42, 43, 44, 45, 46, 47]),
    ([-1, 0, 1, 2], [7, 8, 9, 10]),
    ([-1], [99]),
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("gguf"))


# Structure is compared at 1e-4: keys and values in float32 and attention without flash
# attention's float16 rounding, so a pass's numbers do not depend on which pass stored a cell
# (with llama.cpp's defaults they differ by ~1e-3; a wrong cell differs by whole units).
EXACT = {"kv_type": "f32", "flash_attn": "off"}


@pytest.fixture(scope="module")
def target(pair):
    return llama_lm(pair[0], **EXACT)


def close(a, b, tol=1e-4):
    return a.shape == b.shape and torch.allclose(a, b, atol=tol, rtol=tol)


def test_rollback_to_every_length_equals_a_fresh_pass(target):
    target.reset()
    fresh = target.forward(IDS, len(IDS))
    assert fresh.shape == (len(IDS), target.vocab_size) and fresh.dtype == torch.float32
    for keep in range(1, len(IDS)):
        target.forward(IDS, 1)  # the cache covers IDS
        target.cache.crop(keep - len(IDS))  # drop_last's way: keep the first `keep`
        assert target.ids == IDS[:keep]
        assert close(target.forward(IDS, len(IDS) - keep), fresh[keep:]), keep
    # a different continuation after a common prefix rolls back by itself
    other = IDS[:20] + [7, 7, 7]
    target.forward(IDS, 1)
    got = target.forward(other, 3)
    target.reset()
    assert close(got, target.forward(other, 3))


def path_of(parents, node):
    return list(reversed(ancestors(parents, node))) + [node]


@pytest.mark.parametrize("parents,tokens", TREES)
def test_a_tree_pass_equals_one_sequence_at_a_time(target, parents, tokens):
    target.reset()
    tree = target.forward_tree(IDS, tokens, parents)
    assert tree.shape == (len(tokens) + 1, target.vocab_size)
    ref = llama_lm(target.path, **EXACT)  # its own context: one plain chain per node
    for i in range(len(tokens)):
        ref.reset()
        chain = ref.forward(IDS + [tokens[j] for j in path_of(parents, i)], depths(parents)[i] + 2)
        assert close(tree[0], chain[0]) and close(tree[i + 1], chain[-1]), i


@pytest.mark.parametrize("parents,tokens", TREES)
def test_keep_path_leaves_the_cache_of_the_accepted_path(target, parents, tokens):
    """After keep_path, the next pass (and every rollback from there) equals a fresh pass over
    the context plus the accepted path: for every node as the path's end, and for none."""
    ref = llama_lm(target.path, **EXACT)
    for end in [None, *range(len(tokens))]:
        path = () if end is None else tuple(path_of(parents, end))
        target.reset()
        target.forward_tree(IDS, tokens, parents)
        target.keep_path(IDS, tokens, path)
        kept = IDS + [tokens[i] for i in path]
        assert target.ids == kept and target.cache.kv_bytes() == len(kept) * target.cell_bytes
        assert target.cell_bytes == 4 * 2 * 2 * 16 * 4  # layers, k+v, kv heads, head dim, f32
        nxt = kept + [11, 12]
        ref.reset()
        assert close(target.forward(nxt, 3), ref.forward(nxt, 3)), path


def test_long_inputs_read_in_chunks_equal_one_pass(pair):
    lm = llama_lm(pair[0], **EXACT)
    one = lm.forward(IDS, 5)
    lm.reset()
    lm.prefill_chunk = 8
    steps = list(lm.read(IDS[:-1]))
    assert steps[0] == (0, len(IDS) - 1) and steps[-1] == (len(IDS) - 1, len(IDS) - 1)
    assert close(lm.forward(IDS, 5), one)
    lm.reset()
    parts = list(lm.prefill_chunks(IDS))
    assert [s for s, _ in parts] == list(range(0, len(IDS), 8))
    assert sum(len(rows) for _, rows in parts) == len(IDS)  # rows say how much was read
    assert parts[0][1].shape[1] == 0  # no logits asked while reading


def test_the_float32_gguf_gives_the_torch_models_logits(pair):
    """Same weights, two engines: llama.cpp with float32 keys and values and attention in
    float32 matches transformers; its defaults (float16 cache, flash attention) stay close."""
    from specscope.core.lm import CachedLM
    from specscope.core.tiny import tiny_model

    torch_lm = CachedLM(tiny_model("target"))
    ref = torch_lm.logits(torch_lm.forward(IDS, len(IDS)))
    exact = llama_lm(pair[0], kv_type="f32", flash_attn="off").forward(IDS, len(IDS))
    assert close(exact, ref, 1e-3)
    default = llama_lm(pair[0]).forward(IDS, len(IDS))
    assert (default - ref).abs().max() < 0.01 * ref.abs().max()
    assert (default.argmax(-1) == ref.argmax(-1)).float().mean() > 0.95


def test_greedy_equals_plain_decoding_for_every_logits_only_method(pair):
    from specscope.core.drafters.model import ModelDrafter
    from specscope.core.drafters.tree import TreeDrafter

    def wide_tree(target, draft):  # siblings at every depth, so below the root too
        return {"wide-tree": lambda: TreeDrafter(ModelDrafter(draft, target.vocab_size), width=3,
                                                 branch_below=1.0, alt_len=3)}

    decoder = llama_decoder(pair, extra=wide_tree)
    prompts = [[5, 17, 230, 9, 4], [100, 200, 300, 400, 100, 200, 300]]
    seen = {"deep": 0, "steps": 0, "siblings_below_root": 0}
    for prompt in prompts:
        _, plain = run(decoder, prompt, method="ar", max_new_tokens=40)
        for method in ("draft", "tree", "wide-tree", "pool", "jacobi", "lookup"):
            for k in (1, 3, 5):
                events, spec = run(decoder, prompt, method=method, draft_len=k, max_new_tokens=40)
                assert spec.token_ids == plain.token_ids, (method, k, prompt)
                for e in events:
                    if type(e).__name__ == "Drafted" and e.tokens:
                        seen["deep"] += max(depths(e.parents)) + 1 >= 3
                        d = depths(e.parents)
                        seen["siblings_below_root"] += any(
                            d[i] > 0 and e.parents.count(p) > 1 for i, p in enumerate(e.parents))
                seen["steps"] += spec.steps
    assert seen["deep"] > 20 and seen["steps"] > 100 and seen["siblings_below_root"] > 5, seen


def test_the_model_interface(target):
    assert target.hidden_size == target.vocab_size == 1024
    assert target.quant == "f32" and target.device == torch.device("cpu")
    assert target.max_positions == 2048  # the model's trained context, under the default cap
    rows = torch.randn(2, target.vocab_size)
    index = target.head_rows(torch.tensor([5, 3, 9]))
    assert torch.equal(target.logits(rows), rows)
    assert torch.equal(target.logits(rows, index[:2]), rows[:, [5, 3]])
    # what the engine reads: weights per pass, with the head counted for some rows only
    full, some = target.read_params(), target.read_params(100)
    assert full - some == (1024 - 100) * 64 and target.weight_bytes() == full * 4
    target.quantize("none")
    from specscope.core.errors import SpecScopeError

    with pytest.raises(SpecScopeError, match="GGUF's own weights"):
        target.quantize("int8")
