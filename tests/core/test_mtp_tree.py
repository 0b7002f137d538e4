"""FastMTP's head drafting trees, on tiny seeded models in float32, in both shapes:
- "levels": `mtp-tree` (MTPTreeDrafter), a level at a time, each level one batched head step
  under a tree mask, its shape from the head's confidence;
- "hedged": TreeDrafter over MTPDrafter (the `tree` method's shape), branch by branch, the
  head's cache cropped and replayed between branches.
Every node is the hand-computed head's draft after its own path; greedy output is the target's
own; the sampling law is kept (3 deep, siblings below the root, full and trimmed rows, and a
confidence floor that makes the number of children depend on q); only committed positions stay
cached."""
import pytest
import torch

from specscope.core.controls import Controls
from specscope.core.drafters.base import DraftSettings
from specscope.core.drafters.mtp import MTPDrafter
from specscope.core.drafters.mtp_tree import MTPTreeDrafter
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.events import Drafted
from specscope.core.lm import CachedLM
from specscope.core.mtp_train import teacher_hidden
from specscope.core.sampling import Shaping
from specscope.core.tiny import tiny_model
from specscope.core.tree import depths, is_chain
from tests.core.helpers import run, tiny_decoder
from tests.core.mtp_reference import reference_chain
from tests.core.test_distribution import chi2_critical, chi_square
from tests.core.test_mtp_drafter import PROMPTS, artifact_for, greedy, trained_head
from tests.core.test_mtp_sampling import PROMPT, VOCAB, exact_joint3


def make_tree(kind, target, art, context_rows=True, **shape):
    if kind == "levels":
        return MTPTreeDrafter(target, art, context_rows=context_rows, **shape)
    return TreeDrafter(MTPDrafter(target, art, context_rows), name="mtp-tree", **shape)


def head_of(drafter):
    """The MTPDrafter that holds the head's cache and states."""
    return drafter.model if isinstance(drafter, TreeDrafter) else drafter


def tree_decoder(kind, state=None, vocab_size=1024, seed=0, decoder_kw=None, **shape):
    def extra(target, draft):
        art = artifact_for(target.model, state, **shape.pop("artifact", {}))
        return {"mtp-tree": lambda: make_tree(kind, target, art, **shape),
                "mtp": lambda: MTPDrafter(target, art)}

    return tiny_decoder(vocab_size=vocab_size, seed=seed, extra=extra, **(decoder_kw or {}))


def path_of(proposal, i):
    path = []
    while i >= 0:
        path.append(proposal.tokens[i])
        i = proposal.parents[i]
    return path[::-1]


WIDE = {"hedged": dict(width=3, branch_below=1.0, alt_len=3),
        "levels": dict(width=3, expand=3, floor=0.0, max_nodes=24)}


@pytest.mark.parametrize("kind", ["levels", "hedged"])
def test_every_node_is_the_hand_computed_head_after_its_own_path(kind):
    model = tiny_model("target", 0)
    target = CachedLM(model)
    drafter = make_tree(kind, target, artifact_for(model, trained_head()), **WIDE[kind])
    ids = greedy(model, [5, 17, 300, 41, 9], 7)
    hidden = teacher_hidden(model, ids)
    drafter.observe_target(0, hidden[:len(ids) - 1])
    drafter.configure(DraftSettings())
    proposal = drafter.propose(ids, 4, Shaping(0.0), None)
    d = depths(proposal.parents)
    assert max(d) >= 3 and any(depth >= 1 and proposal.parents.count(p) > 1
                               for depth, p in zip(d, proposal.parents))  # siblings below the root
    siblings = {}
    for i, parent in enumerate(proposal.parents):
        path = path_of(proposal, i)
        ref, _ = reference_chain(head_of(drafter).head, model, hidden, ids, len(ids) - 2,
                                 step_tokens=path[:-1], depth=len(path))
        rank = siblings.setdefault(parent, 0)
        siblings[parent] += 1
        assert path[-1] == int(torch.topk(ref[-1], rank + 1).indices[rank]), (i, path)
        assert abs(proposal.q_token[i] - float(torch.softmax(ref[-1], -1).topk(rank + 1).values[rank])) < 1e-4
    assert head_of(drafter).cached_positions() == len(ids) - 1  # drafted entries were dropped


@pytest.mark.parametrize("kind,shape", [("hedged", dict(width=2, branch_below=1.0, alt_len=3)),
                                        ("hedged", dict(width=3, branch_below=0.9, alt_len=2)),
                                        ("levels", dict(width=2, expand=2, floor=0.0)),
                                        ("levels", dict(width=3, expand=4, floor=0.05))])
def test_greedy_output_is_the_targets_own(kind, shape):
    decoder = tree_decoder(kind, trained_head(), **shape)
    model = decoder.target.model
    deep_sibling = False
    for prompt in PROMPTS:
        want = greedy(model, prompt, 40)[len(prompt):]
        for k in (3, 5):
            events, spec = run(decoder, prompt, method="mtp-tree", draft_len=k, max_new_tokens=40)
            assert list(spec.token_ids) == want, (shape, k)
            assert spec.accepted > 0
            for e in events:
                if isinstance(e, Drafted):
                    d = depths(e.parents)
                    deep_sibling |= any(d[i] >= 1 and e.parents.count(p) > 1
                                        for i, p in enumerate(e.parents))
    assert deep_sibling


THREE = {"hedged": dict(width=3, branch_below=1.0, alt_len=2),
         "levels": dict(width=3, expand=3, floor=0.0)}


@pytest.mark.parametrize("kind", ["levels", "hedged"])
def test_after_an_accepted_alternative_the_head_holds_the_targets_states_of_that_path(kind):
    """Sampling on a 6-token vocabulary accepts second and third children often; the hidden
    states the engine hands over must then be those of the path taken, as a fresh teacher-forced
    pass computes them."""
    decoder = tree_decoder(kind, vocab_size=VOCAB, seed=2, decoder_kw=dict(init=0.15, later_scale=0.5),
                           artifact=dict(noise_seed=7), **THREE[kind])
    drafter = head_of(decoder.drafter("mtp-tree"))
    model = decoder.target.model
    off_path = checked = 0
    for seed in range(12):
        ids = list(PROMPT)
        proposal = None
        controls = Controls(method="mtp-tree", draft_len=3, temperature=1.0, seed=seed, max_new_tokens=12)
        for event in decoder.run(PROMPT, controls):
            if isinstance(event, Drafted):
                proposal = event
                want = teacher_hidden(model, ids)[:len(ids) - 1]
                torch.testing.assert_close(drafter.hidden[:len(ids) - 1].float(), want, atol=1e-5, rtol=1e-5)
                checked += 1
            elif type(event).__name__ == "Verified":
                off_path += any(ok and proposal.parents.index(proposal.parents[i]) != i
                                for i, ok in enumerate(event.accepted))
                ids += list(event.emitted)
    assert checked > 30 and off_path >= 3


@pytest.mark.parametrize("kind", ["levels", "hedged"])
def test_the_cache_holds_only_committed_positions(kind):
    decoder = tree_decoder(kind, trained_head(), **THREE[kind])
    drafter = head_of(decoder.drafter("mtp-tree"))
    ids = list(PROMPTS[0])
    for event in decoder.run(PROMPTS[0], Controls(method="mtp-tree", draft_len=4, max_new_tokens=30)):
        if isinstance(event, Drafted):
            assert drafter.cached_positions() == len(ids) - 1 and drafter.cached_ids == ids
        elif type(event).__name__ == "Verified":
            ids += list(event.emitted)


@pytest.mark.parametrize("kind,k,shape", [("hedged", None, THREE["hedged"]), ("hedged", 3, THREE["hedged"]),
                                          ("levels", None, THREE["levels"]), ("levels", 3, THREE["levels"]),
                                          ("levels", None, dict(width=3, expand=2, floor=0.12)),
                                          ("levels", 2, dict(**THREE["levels"], context_rows=True))])
@pytest.mark.slow
def test_sampling_law(kind, k, shape):
    """The joint of the first three tokens (6-token vocabulary, exact) against seeded runs, with
    the full vocabulary and with three kept rows (q zero outside them); for the levels shape
    also with a floor, so that how many children a node gets depends on its q and which nodes
    grow depends on the drawn tokens, and with two ranked rows plus the context's tokens."""
    ranking = torch.tensor([3, 0, 5, 1, 4, 2])
    shape = {"context_rows": False, **shape}
    decoder = tree_decoder(kind, vocab_size=VOCAB, seed=2, decoder_kw=dict(init=0.15, later_scale=0.5),
                           artifact=dict(ranking=ranking, k=k, noise_seed=7), **shape)
    n = 1500
    expected = exact_joint3(decoder.target.model, Shaping(1.0)) * n
    counts = torch.zeros(VOCAB, VOCAB, VOCAB)
    drafted = accepted = 0
    trees = 0
    for seed in range(n):
        controls = Controls(method="mtp-tree", draft_len=3, temperature=1.0, seed=seed, max_new_tokens=4)
        events = list(decoder.run(PROMPT, controls))
        summary = events[-1].summary
        a, b, c = summary.token_ids[:3]
        counts[a, b, c] += 1
        drafted += summary.drafted
        accepted += summary.accepted
        trees += any(isinstance(e, Drafted) and max(depths(e.parents) or [0]) >= 2
                     and not is_chain(e.parents) for e in events)
    assert trees > n // 2  # the law is tested on trees 3 deep
    assert 0.05 < accepted / drafted < 0.9  # a tree drafts many nodes, most of them off the path
    stat, df = chi_square(counts, expected)
    assert stat < chi2_critical(df), f"chi2={stat:.1f} df={df}"


def copy_stats(events):
    """(accepted copy nodes, of them below another accepted node, copy nodes proposed)."""
    accepted = deep = proposed = 0
    drafted = None
    for e in events:
        if isinstance(e, Drafted):
            drafted = e
        elif type(e).__name__ == "Verified" and drafted is not None:
            for i, ok in enumerate(e.accepted):
                if drafted.q[i] is None:  # a copied node (the head's nodes carry their q)
                    proposed += 1
                    accepted += ok
                    deep += ok and drafted.parents[i] >= 0
    return accepted, deep, proposed


SMALL = dict(vocab_size=VOCAB, seed=2, decoder_kw=dict(init=0.15, later_scale=0.5),
             artifact=dict(ranking=torch.tensor([3, 0, 5, 1, 4, 2]), k=None, noise_seed=7))


def deepest(events):
    """The deepest drafted node of a run (1 = a child of the root)."""
    most = 0
    for e in events:
        if isinstance(e, Drafted) and len(e.parents):
            most = max(most, max(depths(list(e.parents))) + 1)
    return most


@pytest.mark.parametrize("shape", [dict(width=2, expand=2, floor=0.0), dict(width=3, expand=4, floor=0.05),
                                   dict(width=2, expand=2, floor=0.0, copy_len=8)])
def test_greedy_output_with_the_copy_branch_is_the_targets_own(shape):
    """The copy branch on (the default) and off: the same greedy output, and with it on, copied
    nodes are accepted, below accepted nodes too (on a 6-token vocabulary text repeats itself;
    the tiny 1024-token targets never do; a head over 2 kept rows leaves the copy branch the
    tokens it cannot draft)."""
    small = {**SMALL, "artifact": {**SMALL["artifact"], "k": 2}}  # the head drafts 2 of 6 tokens
    on = tree_decoder("levels", context_rows=False, **small, **shape)
    off = tree_decoder("levels", context_rows=False, copy=False, **small, **shape)
    model = on.target.model
    totals = [0, 0, 0]
    for prompt in ([0, 1, 2, 3], [4, 2, 5, 1, 0], list(PROMPT)):
        want = greedy(model, prompt, 40)[len(prompt):]
        for k in (3, 5):
            events, spec = run(on, prompt, method="mtp-tree", draft_len=k, max_new_tokens=40)
            assert list(spec.token_ids) == want, (shape, k)
            totals = [a + b for a, b in zip(totals, copy_stats(events))]
            # copy_len: the copied chain may go deeper than the head's k; without it, never
            assert deepest(events) <= max(k, shape.get("copy_len", 0))
            if "copy_len" in shape and k == 3 and prompt == [4, 2, 5, 1, 0]:
                assert deepest(events) > k, "the copy branch stopped at k"
            events, spec = run(off, prompt, method="mtp-tree", draft_len=k, max_new_tokens=40)
            assert list(spec.token_ids) == want and copy_stats(events) == (0, 0, 0)
    accepted, deep, proposed = totals
    assert proposed > 20 and accepted > 5 and deep > 2, totals


def test_the_copy_branch_follows_the_trees_own_nodes_then_hangs_below_them():
    from specscope.core.drafters.base import Proposal
    from specscope.core.drafters.copy_branch import add_copy_branch

    tree = Proposal(tokens=[5, 6, 7, 8], parents=[-1, -1, 0, 2], q_token=[0.5, 0.3, 0.4, 0.2])
    rows = add_copy_branch(tree, [5, 7, 9, 8], greedy=False, vocab=12, device="cpu")
    assert tree.tokens == [5, 6, 7, 8, 9, 8] and tree.parents == [-1, -1, 0, 2, 2, 4]
    assert tree.q_token[4:] == [None, None]
    assert [int(r.argmax()) for r in rows] == [9, 8] and all(float(r.sum()) == 1 for r in rows)
    tree = Proposal(tokens=[5], parents=[-1], q_token=[0.5])
    assert add_copy_branch(tree, [4, 5], greedy=True, vocab=12, device="cpu") == []
    assert tree.tokens == [5, 4, 5] and tree.parents == [-1, -1, 1]


@pytest.mark.parametrize("shape", [dict(width=2, expand=2, floor=0.0), dict(width=1, expand=1, floor=0.0),
                                   dict(width=2, expand=2, floor=0.0, copy_len=6)])
@pytest.mark.slow
def test_sampling_law_with_copied_nodes(shape):
    """The joint of the first three tokens with the copy branch on. The prompt ends in the
    target's own loop (its greedy text from [4, 2, 5, 1, 0] is 4 5 5 5 ...), which the copy
    branch continues, and the head drafts over 2 kept rows without 5: copied nodes are tried
    after the head's sampled siblings (one-hot q), at the root and below accepted copied nodes,
    and where the head drew a copied token the copy hangs below the head's node."""
    loop = [4, 2, 5, 1, 0, 4, 5, 5, 5]
    small = {**SMALL, "artifact": {**SMALL["artifact"], "k": 2}}
    decoder = tree_decoder("levels", context_rows=False, **small, **shape)
    n = 1500
    expected = exact_joint3(decoder.target.model, Shaping(1.0), loop) * n
    counts = torch.zeros(VOCAB, VOCAB, VOCAB)
    totals = [0, 0, 0]
    for seed in range(n):
        controls = Controls(method="mtp-tree", draft_len=3, temperature=1.0, seed=seed, max_new_tokens=4)
        events = list(decoder.run(loop, controls))
        a, b, c = events[-1].summary.token_ids[:3]
        counts[a, b, c] += 1
        totals = [x + y for x, y in zip(totals, copy_stats(events))]
    accepted, deep, proposed = totals
    assert accepted > n // 2 and deep > n // 5, totals
    stat, df = chi_square(counts, expected)
    assert stat < chi2_critical(df), f"chi2={stat:.1f} df={df}"
