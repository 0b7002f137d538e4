"""H-RAD (core/hrad.py, core/adaptive_learned.py): labels on a fixed example, the rule's
decisions from fixed predictors (in the engine too), greedy identity and the sampling law with
`-k learned`, and the artifact's round trip and refusals."""
import pytest
import torch

from specscope.core.adaptive_learned import LearnedLength
from specscope.core.errors import SpecScopeError
from specscope.core.events import Drafted
from specscope.core.hrad import (HradArtifact, LengthPredictor, accept_runs, decide, load_artifact,
                                 save_artifact)
from specscope.core.lm import CachedLM
from specscope.core.tiny import tiny_model, tiny_tokenizer
from tests.core.helpers import run, tiny_decoder
from tests.core.test_drafter_common import assert_law, one_thread  # noqa: F401

VOCAB = 6
PROMPT = [1, 4, 2]


def fixed(hidden: int, cap: int, favourite: int) -> LengthPredictor:
    """A predictor that always puts most of its mass on a = favourite."""
    p = LengthPredictor(hidden, cap, 8)
    with torch.no_grad():
        p.out.weight.zero_()
        p.out.bias.zero_()
        p.out.bias[favourite] = 4.0
    return p


def varied(hidden: int, cap: int = 4, seed: int = 0, scale: float = 6.0) -> LengthPredictor:
    """Random weights, scaled so its outcome changes with the token and the state."""
    torch.manual_seed(seed)
    p = LengthPredictor(hidden, cap, 16)
    with torch.no_grad():
        p.out.weight.mul_(scale)
    return p


def with_predictor(decoder, predictor):
    decoder.length_predictor = lambda: HradArtifact(predictor, decoder.target.embed, {})
    return decoder


# ---- labels and decisions ------------------------------------------------------------------------

def test_labels_count_the_drafters_run_of_agreement_with_the_targets_text():
    #  position:      0   1   2   3   4   5   6   7
    ids = [9, 5, 1, 2, 3, 4, 7, 8]  # the answer starts at 2; ids[t+1] is the target's token
    # draft_next[i]: the drafter's greedy token after ids[:i+1]
    draft_next = [0, 1, 2, 0, 4, 7, 8, 0]
    # t=1: 1==ids[2], 2==ids[3], 0!=ids[4] -> 2; t=2: 2==ids[3], then 0!=3 -> 1; t=3: 0!=3 -> 0;
    # t=4: 4, 7, 8 match to the end (3 < cap 4): unknown -> -1; t=5: 7, 8 then the end -> -1;
    # t=6: 8 then the end -> -1
    assert accept_runs(draft_next, ids, 1, cap=4) == [2, 1, 0, -1, -1, -1]
    assert accept_runs(draft_next, ids, 1, cap=2) == [2, 1, 0, 2, 2, -1]  # the cap is known


def test_decide_stop_explicit_implicit():
    assert decide(torch.tensor([0.6, 0.1, 0.1, 0.1, 0.1]), 12) == ("stop", 0)
    assert decide(torch.tensor([0.05, 0.05, 0.05, 0.05, 0.8]), 12) == ("implicit", 12)
    # likeliest a = 2; P(a>=3) = 0.35 < 1/2 <= P(a>=2) = 0.75: draft 2
    assert decide(torch.tensor([0.1, 0.15, 0.4, 0.2, 0.15]), 12) == ("explicit", 2)
    # likeliest a = 1, but the median is 3 (P(a>=3) = 0.55): the median
    assert decide(torch.tensor([0.05, 0.3, 0.1, 0.28, 0.27]), 12) == ("explicit", 3)
    assert decide(torch.tensor([0.05, 0.3, 0.1, 0.28, 0.27]), 2) == ("explicit", 2)  # at most max_len


def test_the_rule_follows_a_fixed_predictor_and_cuts_by_confidence_only_when_implicit():
    d = 8
    emb = torch.nn.Embedding(10, d)
    for favourite, mode, k in ((0, "stop", 0), (2, "explicit", 2), (4, "implicit", 12)):
        rule = LearnedLength(HradArtifact(fixed(d, 4, favourite), emb, {}), start=5)
        assert rule.next_length() == 5 and rule.mode == "explicit"  # nothing seen yet: start
        rule.see(torch.randn(d), 3)
        assert (rule.next_length(), rule.mode) == (min(k, 5), mode)  # no cost measured: <= start
        rule.cost.verify_samples.append((0, 1.0))  # a measured target pass
        rule.cost.draft_per_token = 0.3
        assert (rule.next_length(), rule.mode) == (k, mode)
        assert rule.min_confidence == (pytest.approx(0.3) if mode == "implicit" else 0.0)
        rule.see(torch.full((d,), float("nan")), 3)  # a served target's missing rows
        assert rule.next_length() == 5


def test_the_engine_asks_the_predictor_every_step_from_the_first():
    decoder = tiny_decoder()
    with_predictor(decoder, fixed(decoder.target.hidden_size, 4, 2))
    events, spec = run(decoder, [5, 6, 7], method="draft", draft_len=5, adaptive=True,
                       adaptive_rule="learned", max_new_tokens=24)
    drafted = [e for e in events if isinstance(e, Drafted)]
    room = [24 - (e.context_len - 3) - 1 for e in drafted]  # the engine's cap near the end
    assert len(drafted) > 3 and [e.draft_len for e in drafted] == [min(2, r) for r in room]
    _, plain = run(decoder, [5, 6, 7], method="ar", max_new_tokens=24)
    assert spec.token_ids == plain.token_ids
    stop = with_predictor(tiny_decoder(), fixed(decoder.target.hidden_size, 4, 0))
    events, summary = run(stop, [5, 6, 7], method="draft", adaptive=True, adaptive_rule="learned",
                          max_new_tokens=12)
    assert all(not e.tokens for e in events if isinstance(e, Drafted))
    assert summary.token_ids == plain.token_ids[:12]


def test_greedy_output_is_plain_decodings_with_varied_learned_lengths():
    decoder = tiny_decoder()
    with_predictor(decoder, varied(decoder.target.hidden_size))
    for prompt in ([5, 6, 7], [100, 3, 3, 9, 42]):
        _, plain = run(decoder, prompt, method="ar", max_new_tokens=40)
        decoder.reset()
        events, spec = run(decoder, prompt, method="draft", adaptive=True, adaptive_rule="learned",
                           max_new_tokens=40)
        assert spec.token_ids == plain.token_ids
        asked = {e.draft_len for e in events if isinstance(e, Drafted)}
        assert len(asked) >= 2  # the lengths did change


def test_learned_needs_a_predictor_and_a_draft_model():
    decoder = tiny_decoder()
    with pytest.raises(SpecScopeError, match="no trained draft-length predictor"):
        run(decoder, [5, 6], method="draft", adaptive=True, adaptive_rule="learned")
    with_predictor(decoder, fixed(decoder.target.hidden_size, 4, 2))
    with pytest.raises(SpecScopeError, match="not 'ar'"):
        run(decoder, [5, 6], method="ar", adaptive=True, adaptive_rule="learned")


@pytest.mark.slow
def test_learned_lengths_keep_the_law_over_several_steps():
    """The joint law of the first 4 tokens, the first step drafting 3 deep (implicit, before a
    target pass is measured: up to the start length, 3), later steps sized by the
    predictor from the committed tokens' features (varied: stop, explicit and implicit)."""
    decoder = tiny_decoder(vocab_size=VOCAB, seed=2, init=0.15, later_scale=0.5)
    predictor = varied(decoder.target.hidden_size, cap=3, seed=1, scale=8.0)
    with torch.no_grad():
        predictor.out.bias[3] += 6.0  # the prompt's features: implicit
    with_predictor(decoder, predictor)
    drafted = assert_law(decoder, "draft", PROMPT, m=4, n=2000, draft_len=3, temperature=0.8,
                         adaptive=True, adaptive_rule="learned",
                         before_run=lambda seed: decoder.reset())
    assert max(len(d.tokens) for d in drafted if d.step == 0) >= 3
    later = {d.draft_len for d in drafted if d.step >= 1}
    assert len(later) >= 2  # the predictor's lengths changed from step to step


# ---- the artifact ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair():
    return (CachedLM(tiny_model("target", 0, 1024)), CachedLM(tiny_model("draft", 0, 1024)),
            tiny_tokenizer(1024))


def test_the_artifact_round_trips_and_refuses_another_pair(pair, tmp_path):
    target, draft, tok = pair
    pred = varied(target.hidden_size, cap=5)
    path = save_artifact(tmp_path / "h.safetensors", pred, target, "tiny:t", draft, "tiny:d", tok,
                         "tiny", {"estimate": {"accuracy": 0.5}})
    loaded = load_artifact(path, target, "tiny:t", draft, "tiny:d", tok)
    assert loaded.meta["training"]["estimate"]["accuracy"] == 0.5 and loaded.predictor.cap == 5
    h = torch.randn(target.hidden_size)
    assert torch.allclose(loaded.probs(h, 17), HradArtifact(pred, target.embed, {}).probs(h, 17))
    other = CachedLM(tiny_model("target", 1, 1024))
    with pytest.raises(SpecScopeError, match="another target .*specscope hrad train -p tiny"):
        load_artifact(path, other, "tiny:t", draft, "tiny:d", tok)
    with pytest.raises(SpecScopeError, match="another drafter"):
        load_artifact(path, target, "tiny:t", CachedLM(tiny_model("draft", 1, 1024)), "tiny:d", tok)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(SpecScopeError, match="not a specscope draft-length predictor"):
        load_artifact(tmp_path / "bad.safetensors", target, "tiny:t", draft, "tiny:d", tok)
    with pytest.raises(SpecScopeError, match="not found"):
        load_artifact(tmp_path / "none.safetensors", target, "tiny:t", draft, "tiny:d", tok)
