"""Core defects a deploying engineer would hit, each with a test that failed before its fix:
greedy identity against the model's own argmax, EOS inside a draft under sampling, recovery after
a failed forward pass, caches specscope cannot prune, logits computed after the head, adaptive
length with trees, state leaking between runs, per-depth statistics of trees."""
import pytest
import torch

from specscope.core.adaptive import AdaptiveLength
from specscope.core.controls import Controls
from specscope.core.drafters.model import ModelDrafter
from specscope.core.drafters.pool import PoolDrafter
from specscope.core.drafters.tree import TreeDrafter
from specscope.core.errors import SpecScopeError
from specscope.core.events import Drafted, Verified
from specscope.core.lm import CachedLM
from specscope.core.stats import Stats
from tests.core.helpers import model_greedy, run, tiny_decoder
from tests.core.test_drafter_common import one_thread  # noqa: F401

PROMPT = [5, 17, 230, 41]


def all_drafters(target, draft):
    return {
        "tree": lambda: TreeDrafter(ModelDrafter(draft, target.vocab_size), width=2, branch_below=1.0),
        "pool": lambda: PoolDrafter(ModelDrafter(draft, target.vocab_size)),
    }


@pytest.mark.parametrize("method", ["ar", "draft", "tree", "pool"])
def test_greedy_equals_the_models_own_argmax(method):
    decoder = tiny_decoder(extra=all_drafters)
    want = model_greedy(decoder.target.model, PROMPT, 30)
    for k in (1, 3, 6):
        _, got = run(decoder, PROMPT, method=method, draft_len=k, max_new_tokens=30)
        assert list(got.token_ids) == want, (method, k)


def test_eos_inside_a_draft_under_sampling_ends_the_answer_there():
    decoder = tiny_decoder(vocab_size=6, seed=2, init=0.15, later_scale=0.5, eos_ids={3})
    saw_dropped = False
    for seed in range(150):
        events, s = run(decoder, [1, 4, 2], method="draft", draft_len=4, temperature=1.0,
                        seed=seed, max_new_tokens=12)
        ids = list(s.token_ids)
        if 3 in ids:
            assert ids.index(3) == len(ids) - 1 and s.stop_reason == "eos"
        for v in (e for e in events if isinstance(e, Verified)):
            if any(v.dropped):
                saw_dropped = True
                assert not v.token_emitted and v.first_rejected is None
                # the EOS was itself an accepted draft token: every emitted token is a draft's
                assert v.emitted[-1] == 3 and sum(v.accepted) == v.n_accepted == len(v.emitted)
    assert saw_dropped  # an accepted draft ran past EOS at least once


def test_a_failed_forward_pass_leaves_a_usable_decoder():
    decoder = tiny_decoder()
    _, fresh = run(decoder, PROMPT, method="draft", draft_len=4, max_new_tokens=20)
    layer = decoder.target.model.model.layers[2]
    real, calls = layer.forward, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:  # a later step: layers 0 and 1 have grown, 2 and 3 have not
            raise RuntimeError("out of memory (simulated)")
        return real(*a, **k)

    layer.forward = flaky
    with pytest.raises(RuntimeError, match="simulated"):
        run(decoder, PROMPT, method="draft", draft_len=4, max_new_tokens=20)
    layer.forward = real
    assert decoder.target.ids == []  # the half-grown cache was dropped
    _, again = run(decoder, PROMPT, method="draft", draft_len=4, max_new_tokens=20)
    assert again.token_ids == fresh.token_ids


def test_caches_with_sliding_window_layers_are_refused_at_load():
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=8)
    with pytest.raises(SpecScopeError, match="sliding window"):
        CachedLM(MistralForCausalLM(config).eval())


def tiny(cls_config, cls_model, **kw):
    torch.manual_seed(0)
    config = cls_config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, **kw)
    return cls_model(config).eval()


@pytest.mark.parametrize("arch", ["granite", "cohere", "gemma2"])
def test_logits_are_the_models_own_after_its_head(arch):
    """Scaling and soft-capping after the head change p; CachedLM must apply them."""
    import transformers as tf

    if arch == "granite":
        model = tiny(tf.GraniteConfig, tf.GraniteForCausalLM, logits_scaling=4.0)
    elif arch == "cohere":
        model = tiny(tf.CohereConfig, tf.CohereForCausalLM, logit_scale=0.25)
    else:
        model = tiny(tf.Gemma2Config, tf.Gemma2ForCausalLM, final_logit_softcapping=2.0,
                     layer_types=["full_attention"] * 2, head_dim=8)
    lm = CachedLM(model)
    ids = [3, 9, 27, 11]
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].float()
    got = lm.logits(lm.forward(ids, len(ids)))
    assert torch.allclose(got, want, atol=1e-5)
    with torch.inference_mode():
        plain = torch.nn.functional.linear(lm.forward(ids, len(ids)), lm.head.weight).float()
    assert not torch.allclose(plain, want, atol=1e-3)  # the transform matters for this model


def test_a_model_that_changes_its_logits_some_other_way_is_refused():
    from specscope.core.tiny import tiny_model

    model = tiny_model("target")
    real = model.forward

    def doubled(*a, **k):
        out = real(*a, **k)
        out.logits = out.logits * 2
        return out

    model.forward = doubled
    with pytest.raises(SpecScopeError, match="logits"):
        CachedLM(model)


def test_adaptive_length_takes_depths_not_node_counts():
    policy = AdaptiveLength(12)
    policy.observe(12, 12, 12, 0.1, 0.2, nodes=20)  # a 20-node tree, 12 deep: used to raise
    decoder = tiny_decoder(extra=all_drafters)
    want = model_greedy(decoder.target.model, PROMPT, 40)
    events, s = run(decoder, PROMPT, method="tree", draft_len=12, adaptive=True, max_new_tokens=40)
    assert list(s.token_ids) == want


def test_runs_do_not_leak_into_each_other_after_reset():
    """A greedy repeat used to replay the whole answer from the phrase pool."""
    decoder = tiny_decoder(extra=all_drafters)
    _, first = run(decoder, PROMPT, method="pool", draft_len=4, max_new_tokens=40)
    _, replay = run(decoder, PROMPT, method="pool", draft_len=4, max_new_tokens=40)
    assert replay.steps < first.steps  # without a reset, the pool remembers the answer
    decoder.reset()
    _, again = run(decoder, PROMPT, method="pool", draft_len=4, max_new_tokens=40)
    assert (again.steps, again.drafted, again.accepted) == (first.steps, first.drafted, first.accepted)


def test_bench_runs_start_from_the_same_state(tiny_session):
    from specscope.bench.grid import Config
    from specscope.bench.runner import Runner

    runner = Runner(tiny_session, tiny_session.controls(max_new_tokens=24))
    ids = tiny_session.encode("def add(a, b): return a + b")
    for method in ("pool", "layerskip"):
        a = runner.measure(Config(method, 4), ids, seed=0)
        b = runner.measure(Config(method, 4), ids, seed=0)
        assert (a.token_ids, a.steps, a.drafted, a.accepted) == (b.token_ids, b.steps, b.drafted, b.accepted), method
    # an adaptive policy measures wall-clock costs, so compare the policy itself: a new one a run
    runner.measure(Config("draft", "auto"), ids, seed=0)
    first = dict(tiny_session.decoder._policies)
    runner.measure(Config("draft", "auto"), ids, seed=0)
    assert first and all(tiny_session.decoder._policies[key] is not p for key, p in first.items())


def test_tree_per_position_statistics_count_depths_by_hand():
    stats = Stats()
    #   root -> 0 -> 2 -> 4      (chain 0, 2, 4)
    #        -> 1 -> 3           (alternative 1, 3)
    parents = (-1, -1, 0, 1, 2)
    for accepted_path in ((0, 2), (1,)):
        stats.add(Drafted(0, 4, "tree", 3, (7, 8, 9, 10, 11), ("",) * 5, (None,) * 5, parents, 0.0))
        n = len(accepted_path)
        stats.add(Verified(0, (0.5,) * 5, tuple(i in accepted_path for i in range(5)), n, None,
                           1, "", False, (1,) * (n + 1), ("",) * (n + 1), 0.0, 0.0))
    # depth 0: 2 nodes a step, 1 accepted each step -> 2/4; depth 1: 2 nodes, accepted once -> 1/4;
    # depth 2: 1 node, never accepted -> 0/2
    assert stats.pos_drafted == [4, 4, 2] and stats.pos_accepted == [2, 1, 0]
    assert stats.acceptance_rate == pytest.approx(3 / 10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_sampling_and_trees_run_on_cuda():
    decoder = tiny_decoder(extra=all_drafters)
    for lm in (decoder.target, decoder.drafter("draft").lm):
        lm.model.cuda()
        lm.device = torch.device("cuda")
        lm.reset()
    for method in ("draft", "tree", "pool"):
        _, s = run(decoder, PROMPT, method=method, draft_len=4, temperature=0.8, top_p=0.9,
                   max_new_tokens=24)
        assert s.new_tokens == 24
        _, g = run(decoder, PROMPT, method=method, draft_len=4, max_new_tokens=24)
        assert list(g.token_ids) == model_greedy(decoder.target.model, PROMPT, 24)


def test_a_drafter_whose_head_is_wider_than_the_targets_is_refused():
    # full_q cut such a drafter's q to the target's width: a q that no longer sums to 1 (the
    # sampling law breaks), and a greedy draft could be a row the target has no token for
    from specscope.core.tiny import tiny_model

    target = CachedLM(tiny_model("target", vocab_size=1024))
    wide = CachedLM(tiny_model("draft", vocab_size=1040))
    with pytest.raises(SpecScopeError, match="drafter's head has 1040 rows, the target's 1024"):
        ModelDrafter(wide, target.vocab_size)
    narrow = ModelDrafter(CachedLM(tiny_model("draft", vocab_size=1000)), target.vocab_size)
    q = torch.softmax(torch.randn(1000), -1)
    full = narrow.full_q(q)  # a narrower head: q padded with zeros, its mass kept
    assert full.shape == (1024,) and torch.equal(full[:1000], q) and not full[1000:].any()
