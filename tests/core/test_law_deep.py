"""The sampling law at depth: every model drafter, drafts 3 deep in the first step, siblings
below the root, and every option that changes q (trimmed heads, temperature, top-k, top-p, the
confidence cut-off). The joint law of the first 3 tokens must be the target's (chi-square), and
each test checks that the case it means did occur (depth, shape, tokens removed)."""
import pytest
import torch

from specscope.core.drafters.base import DraftSettings
from specscope.core.drafters.model import ModelDrafter, RankedHead
from specscope.core.drafters.pool import PoolDrafter
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.sampling import Shaping, probs_from_logits
from specscope.core.tree import depths
from tests.core.helpers import tiny_decoder
from tests.core.test_drafter_common import assert_law, one_thread  # noqa: F401

VOCAB = 6
PROMPT = [1, 4, 2]
RANKING = torch.tensor([3, 0, 4, 1, 2, 5])  # a trimmed head keeps the first K of these


class CutOff(ModelDrafter):
    """A draft model whose confidence cut-off is fixed (the engine sets none without auto)."""

    def configure(self, settings):
        super().configure(DraftSettings(settings.vocab_top_k, 0.15))


def decoder_with(**factories):
    def extra(target, draft):
        ranked = RankedHead(draft, RANKING, 3)
        made = {
            "chain": lambda: ModelDrafter(draft, VOCAB),
            "trimmed": lambda: ModelDrafter(draft, VOCAB, ranked),
            "tree": lambda: TreeDrafter(ModelDrafter(draft, VOCAB), width=3, branch_below=1.0, alt_len=3),
            "tree-trimmed": lambda: TreeDrafter(ModelDrafter(draft, VOCAB, ranked), width=2,
                                                branch_below=1.0, alt_len=3),
            "pool-trimmed": lambda: PoolDrafter(ModelDrafter(draft, VOCAB, ranked)),
            "cutoff": lambda: CutOff(draft, VOCAB),
        }
        return {name: made[name] for name in factories}
    return tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5,
                        extra=lambda t, d: extra(t, d))


def deepest_first_step(drafted):
    firsts = [d for d in drafted if d.step == 0 and d.tokens]
    return max((max(depths(d.parents)) + 1 for d in firsts), default=0)


@pytest.mark.parametrize("method,shaping", [
    ("chain", dict(temperature=1.0)),
    ("chain", dict(temperature=0.7, top_k=4)),
    ("chain", dict(temperature=1.3, top_p=0.85)),
    ("trimmed", dict(temperature=1.0)),
    ("trimmed", dict(temperature=0.8, top_p=0.9)),
])
@pytest.mark.slow
def test_chains_three_deep_follow_the_target(method, shaping):
    decoder = decoder_with(**{method: True})
    drafted = assert_law(decoder, method, PROMPT, m=3, n=1500, draft_len=3, **shaping)
    assert deepest_first_step(drafted) == 3


def test_top_p_and_top_k_do_remove_tokens():
    """Otherwise the shaped cases above would test nothing new."""
    decoder = decoder_with(chain=True)
    with torch.no_grad():
        logits = decoder.target.model(torch.tensor([PROMPT])).logits[0, -1]
    full = probs_from_logits(logits, Shaping(1.3))
    for shaping in (Shaping(1.3, top_p=0.85), Shaping(0.7, top_k=4)):
        cut = probs_from_logits(logits, shaping)
        assert ((cut == 0) & (full > 0)).any(), shaping


@pytest.mark.parametrize("method", ["tree", "tree-trimmed"])
@pytest.mark.slow
def test_trees_with_siblings_at_every_depth_follow_the_target(method):
    decoder = decoder_with(**{method: True})
    drafted = assert_law(decoder, method, PROMPT, m=3, n=1500, draft_len=3, temperature=0.9)
    assert deepest_first_step(drafted) == 3
    sibling_depths = set()
    for d in drafted:
        ds = depths(d.parents)
        for parent in set(d.parents):
            kids = [i for i, p in enumerate(d.parents) if p == parent]
            if len(kids) > 1:
                sibling_depths.add(ds[kids[0]])
    assert {0, 1} <= sibling_depths  # siblings below the root, not only at it


@pytest.mark.slow
def test_the_pool_with_a_trimmed_head_follows_the_target():
    decoder = decoder_with(**{"pool-trimmed": True})
    drafted = assert_law(decoder, "pool-trimmed", PROMPT, m=3, n=1500, draft_len=3,
                         before_run=lambda seed: decoder.drafter("pool-trimmed").reset())
    assert deepest_first_step(drafted) == 3
    kept = set(RANKING[:3].tolist())
    model_tokens = {x for d in drafted for x, q in zip(d.tokens, d.q) if q is not None}
    assert model_tokens and model_tokens <= kept  # the vocabulary size reached the draft model


@pytest.mark.slow
def test_the_confidence_cut_off_keeps_the_law():
    decoder = decoder_with(cutoff=True)
    drafted = assert_law(decoder, "cutoff", PROMPT, m=3, n=1500, draft_len=3, temperature=1.0)
    lengths = {len(d.tokens) for d in drafted if d.step == 0}
    assert min(lengths) < 3 and len(lengths) >= 2  # the cut-off did cut, and not always alike


@pytest.mark.slow
def test_adaptive_length_with_a_tree_keeps_the_law():
    decoder = decoder_with(tree=True)
    assert_law(decoder, "tree", PROMPT, m=3, n=800, draft_len=3, temperature=1.0, adaptive=True,
               before_run=lambda seed: decoder.reset())


@pytest.mark.slow
def test_chains_over_a_long_context_go_through_the_tree_pass_and_follow_the_target(monkeypatch):
    """Past prefill_chunk tokens of context a chain is verified by the tree pass (hybrid
    attention, keep_path): the law must not change. A context of 3 is 'long' at chunk 2."""
    decoder = decoder_with(chain=True)
    decoder.target.prefill_chunk = 2
    calls = []
    tree_pass = decoder.target.forward_tree
    monkeypatch.setattr(decoder.target, "forward_tree",
                        lambda *a, **kw: calls.append(len(a[1])) or tree_pass(*a, **kw))
    drafted = assert_law(decoder, "chain", PROMPT, m=3, n=1500, draft_len=3, temperature=1.0)
    assert deepest_first_step(drafted) == 3 and calls and max(calls) == 3


@pytest.mark.parametrize("method", ["trimmed", "pool-trimmed"])
@pytest.mark.slow
def test_several_steps_with_carried_state_keep_the_law(method):
    """The joint of the first 4 tokens when they come from several steps (draft_len 2, so a
    step emits at most 3), at temperature 0.8, with the adaptive length (heuristic: +2 / -1) and
    nothing reset between steps or runs: the drafter's cache (rolled back after rejections),
    the pool's learned continuations and the adaptive policy all carry over."""
    decoder = decoder_with(**{method: True})
    drafted = assert_law(decoder, method, PROMPT, m=4, n=2000, draft_len=2, temperature=0.8,
                         adaptive=True, adaptive_rule="heuristic")
    assert max(d.step for d in drafted) >= 1  # the fourth token came from a later step
    assert len({len(d.tokens) for d in drafted if d.step >= 1}) >= 2  # lengths changed
