"""Draft & Verify: the target drafts with layers skipped; output stays the target's own."""
import json

import pytest
import torch

from specscope.core.drafters.layerskip import ExitRule, LayerSkipDrafter, SkipLM, default_skip
from specscope.core.events import Drafted
from specscope.core.layerskip_search import (best_known_skip, calibrate, fingerprint, load_result,
                                             match_runs, result_path, save_result, search)
from specscope.core.lm import CachedLM
from tests.core.helpers import run, tiny_decoder
from tests.core.test_drafter_common import assert_law, greedy_matches_plain, one_thread  # noqa: F401

PROMPTS = [[5, 17, 230, 41], [900, 3, 3, 3, 77, 12, 640, 11, 2], [100]]


def skippers(target, draft):
    return {"layerskip": lambda: LayerSkipDrafter(target, [2]),
            "skip-fixed": lambda: LayerSkipDrafter(target, [1, 2], adaptive=False),
            "skip-first": lambda: LayerSkipDrafter(target, [0])}  # its cache keeps layer 0 empty


@pytest.fixture(scope="module")
def decoder():
    return tiny_decoder(extra=skippers)


def test_skipping_nothing_is_the_target_and_the_cache_rolls_back():
    target = CachedLM(tiny_decoder().target.model)
    ids = [5, 17, 230, 41, 9, 9, 100, 3]
    full = target.forward(ids, 8)
    lm = SkipLM(target.model, [])
    lm.forward(ids[:3], 1)
    lm.forward(ids[:4] + [7, 7], 2)  # a rejected draft, then the committed text
    assert torch.allclose(lm.forward(ids, 4), full[-4:], atol=1e-5)
    skipped = SkipLM(target.model, [0, 2])  # layer 0 skipped: its cache layer stays empty
    whole = skipped.forward(ids, 8)
    step = SkipLM(target.model, [0, 2])
    step.forward(ids[:5], 1)
    assert torch.allclose(step.forward(ids, 3), whole[-3:], atol=1e-5)
    assert not torch.allclose(whole, full, atol=1e-2)
    assert skipped.read_params() < lm.read_params() == target.read_params()


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("method", ["layerskip", "skip-fixed", "skip-first"])
def test_greedy_layerskip_equals_plain(decoder, prompt, method):
    specs = greedy_matches_plain(decoder, method, prompt, lengths=(1, 2, 4, 8))
    if method != "skip-first":  # without layer 0 the tiny target's drafts are mostly wrong
        assert all(s.accepted > 0 for s in specs)


def test_eos_inside_a_layerskip_draft():
    prompt = PROMPTS[0]
    _, base = run(tiny_decoder(), prompt, method="ar", max_new_tokens=40)
    eos = base.token_ids[12]
    stopper = tiny_decoder(eos_ids={eos}, extra=skippers)
    _, plain = run(stopper, prompt, method="ar", max_new_tokens=40)
    covered = False
    for method in ("layerskip", "skip-fixed"):
        for k in range(2, 9):
            events, spec = run(stopper, prompt, method=method, draft_len=k, max_new_tokens=40)
            assert spec.token_ids == plain.token_ids and spec.stop_reason == "eos"
            covered |= any(eos in e.tokens[:-1] for e in events if isinstance(e, Drafted))
    assert covered


def test_default_skip_sets():
    assert default_skip(28) == [8, 10, 12, 14, 16, 18]
    assert default_skip(4) == [2] and default_skip(2) == []
    for n in range(3, 81):
        skip = default_skip(n)
        assert skip and all(0 < i < n - 1 for i in skip)


def test_exit_threshold_follows_acceptance():
    rule = ExitRule(gamma=0.5)
    for _ in range(50):
        rule.update(drafted=4, accepted=0)
    low = rule.gamma
    assert low > 0.5  # poor acceptance: draft only when more confident
    for _ in range(200):
        rule.update(drafted=4, accepted=4)
    assert rule.gamma < low
    rule.update(drafted=0, accepted=0)  # nothing drafted: nothing learnt


def test_low_confidence_ends_the_draft_early(decoder):
    drafter = decoder.drafter("layerskip")
    drafter.rule.gamma = 1.0  # nothing is that sure: only the first token is drafted
    events, _ = run(decoder, PROMPTS[0], method="layerskip", draft_len=6, max_new_tokens=20)
    assert all(len(e.tokens) == 1 for e in events if isinstance(e, Drafted) and e.draft_len > 0)
    drafter.rule = ExitRule(gamma=0.0, low=0.0)  # every token is sure enough: full drafts
    events, _ = run(decoder, PROMPTS[0], method="layerskip", draft_len=6, max_new_tokens=20)
    assert any(len(e.tokens) == 6 for e in events if isinstance(e, Drafted))


@pytest.mark.slow
def test_sampling_with_layerskip_follows_the_target():
    decoder = tiny_decoder(vocab_size=6, seed=2, init=0.15, later_scale=0.5, extra=skippers)
    prompt = [1, 4, 2]
    target = decoder.target.model
    with torch.no_grad():
        p = torch.softmax(target(torch.tensor([prompt])).logits[0, -1], -1)
        skip = SkipLM(target, [1, 2])
        q = torch.softmax(target.lm_head(skip.forward(prompt, 1)[-1]), -1)
    assert (p - q).abs().sum() > 0.2  # the skipped model does differ from the target
    drafted = assert_law(decoder, "skip-fixed", prompt, m=3, n=3000, draft_len=3)
    assert sum(len(d.tokens) for d in drafted) > 3000


def deep_model(layers=8, seed=0):
    from transformers import Qwen2ForCausalLM

    from specscope.core.tiny import tiny_config

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(tiny_config("target", 64, layers=layers)).eval()
    with torch.no_grad():
        for layer in model.model.layers[1:]:
            layer.mlp.down_proj.weight.mul_(0.2)
    return model


def test_search_returns_a_valid_reproducible_skip_set():
    model = deep_model()
    calib = calibrate(model, [[5, 17, 23, 41], [9, 3, 3, 7, 12], [40, 2]], new_tokens=16)
    assert [len(s) - st for s, st in zip(calib.sequences, calib.starts)] == [16, 16, 16]
    assert max(match_runs(model, [], calib)) == 16  # the target itself matches everywhere
    first = search(model, calib, seed=3, budget=10)
    assert first.skip and first.skip == sorted(set(first.skip))
    assert all(1 <= i <= 6 for i in first.skip)  # never the first or last layer
    assert first.evaluations <= 10 and first.score >= first.default_score
    assert 1 <= first.draft_len <= 8 and first.tau >= 1.0
    again = search(model, calib, seed=3, budget=10)
    assert (again.skip, again.score, again.tried) == (first.skip, first.score, first.tried)


def test_search_results_are_cached_per_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path))
    model = deep_model()
    assert load_result(model) is None and best_known_skip(model) == default_skip(8) == [3]
    calib = calibrate(model, [[5, 17, 23, 41]], new_tokens=8)
    result = search(model, calib, seed=0, budget=4)
    path = save_result(model, result)
    assert path == result_path(model) and path.parent == tmp_path / "layerskip"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert json.loads(path.read_text())["skip"] == result.skip
    assert best_known_skip(model) == result.skip
    assert fingerprint(model.to(torch.bfloat16)) == fingerprint(model.float())  # dtype-free name
    assert fingerprint(deep_model(seed=1)) != fingerprint(model)
    path.write_text("{not json")
    assert best_known_skip(model) == [3]  # a broken cache falls back to the default
