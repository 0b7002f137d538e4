"""The sampling law on the llama.cpp backend: speculative sampling must follow the target's
distribution as llama.cpp computes it (its own plain passes, tests/core/llamacpp_helpers.py's
PlainPasses), through the same machinery as the torch law tests (test_drafter_common.assert_law:
the exact joint law of the first tokens over a 6-token vocabulary, chi-square). Chains and
trees with siblings below the root, drafts 3 deep, several steps with state carried over."""
import pytest

from specscope.core.drafters.model import ModelDrafter
from specscope.core.drafters.pool import PoolDrafter
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.tree import depths
from tests.core.llamacpp_helpers import PlainPasses, llama_decoder, llama_lm, need_binding, write_pair
from tests.core.test_drafter_common import assert_law

need_binding()

VOCAB = 6
PROMPT = [1, 4, 2]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    # the torch law tests' pair (test_law_deep.py): flat enough that drafts are often refused
    return write_pair(tmp_path_factory.mktemp("law"), VOCAB, seed=2, init=0.15, later_scale=0.5)


def decoder_for(pair, method):
    def extra(target, draft):
        made = {
            "chain": lambda: ModelDrafter(draft, VOCAB),
            "tree": lambda: TreeDrafter(ModelDrafter(draft, VOCAB), width=3, branch_below=1.0,
                                        alt_len=3),
            "pool": lambda: PoolDrafter(ModelDrafter(draft, VOCAB)),
        }
        return {method: made[method]}

    decoder = llama_decoder(pair, extra)
    decoder.target.model = PlainPasses(llama_lm(pair[0]))  # the law: llama.cpp's own p
    return decoder


def deepest(drafted):
    return max((max(depths(d.parents)) + 1 for d in drafted if d.tokens), default=0)


@pytest.mark.parametrize("method,n,shaping", [
    ("chain", 1500, dict(temperature=1.0)),
    pytest.param("chain", 1500, dict(temperature=0.7, top_k=4), marks=pytest.mark.slow),
    pytest.param("pool", 1500, dict(temperature=1.0), marks=pytest.mark.slow),
])
def test_chains_three_deep_follow_the_target(pair, method, n, shaping):
    decoder = decoder_for(pair, method)
    reset = (lambda seed: decoder.drafter(method).reset()) if method == "pool" else None
    drafted = assert_law(decoder, method, PROMPT, m=3, n=n, draft_len=3, before_run=reset,
                         **shaping)
    assert deepest(drafted) == 3


def test_trees_with_siblings_below_the_root_follow_the_target(pair):
    decoder = decoder_for(pair, "tree")
    drafted = assert_law(decoder, "tree", PROMPT, m=3, n=1500, draft_len=3, temperature=0.9)
    assert deepest(drafted) == 3
    below_root = set()
    for d in drafted:
        ds = depths(d.parents)
        below_root |= {ds[i] for i, p in enumerate(d.parents) if d.parents.count(p) > 1}
    assert {0, 1} <= below_root  # siblings at the root and below it


@pytest.mark.slow
def test_several_steps_with_state_carried_over_follow_the_target(pair):
    """draft_len 2 over 3 tokens: two steps a run, nothing reset between runs (the caches roll
    back by common prefix, the drafter's cache included)."""
    decoder = decoder_for(pair, "chain")
    drafted = assert_law(decoder, "chain", PROMPT, m=3, n=1500, draft_len=2, temperature=0.8)
    assert len({d.step for d in drafted}) >= 2
