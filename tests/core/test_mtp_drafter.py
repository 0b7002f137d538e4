"""The FastMTP drafter in the speculative loop, on tiny seeded models in float32: its drafts are
the hand-computed head's, greedy output is the target's own, and its cache holds only committed
positions made from the target's hidden states."""
import functools

import pytest
import torch

from specscope.core.controls import Controls
from specscope.core.drafters.base import DraftSettings
from specscope.core.drafters.mtp import MTPDrafter
from specscope.core.lm import CachedLM
from specscope.core.mtp import MTPArtifact, MTPHead
from specscope.core.mtp_train import Sample, label_rows, sequence_loss, teacher_hidden
from specscope.core.sampling import Shaping
from specscope.core.tiny import tiny_model
from tests.core.helpers import run, tiny_decoder
from tests.core.mtp_reference import reference_chain

V = 1024
PROMPTS = [[5, 17, 300, 41, 9], [88, 2, 640, 7]]  # the trained head has seen their continuations


def greedy(model, ids, n):
    ids = list(ids)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids


@functools.lru_cache(maxsize=None)
def trained_head(seed=0, steps=40):
    """A head trained briefly on the tiny target's own greedy continuations, so that it drafts
    some accepted and some rejected tokens."""
    model = tiny_model("target", seed)
    head = MTPHead(model)
    head.init_from(model, "embed")
    g = torch.Generator().manual_seed(1)
    samples = []
    for prompt in PROMPTS + [torch.randint(3, V, (5,), generator=g).tolist() for _ in range(2)]:
        ids = greedy(model, prompt, 30)
        samples.append(Sample(ids, len(prompt), teacher_hidden(model, ids)))
    rows = label_rows(torch.arange(V), V, V)
    opt = torch.optim.AdamW(head.parameters(), lr=2e-3)
    for i in range(steps):
        loss, _ = sequence_loss(head, model.get_input_embeddings(), model.lm_head.weight, rows,
                                samples[i % len(samples)], 3, 0.6)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in head.state_dict().items()}


def artifact_for(model, state=None, ranking=None, k=None, noise_seed=None):
    head = MTPHead(model)
    head.init_from(model, "embed")
    if state is not None:
        head.load_state_dict(state)
    if noise_seed is not None:
        g = torch.Generator().manual_seed(noise_seed)
        with torch.no_grad():
            for p in head.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    vocab = model.config.vocab_size
    ranking = torch.arange(vocab) if ranking is None else ranking
    return MTPArtifact(head.eval(), ranking, k or vocab, {})


def mtp_decoder(seed=0, vocab_size=V, state=None, context_rows=True, **kw):
    def extra(target, draft):
        return {"mtp": lambda: MTPDrafter(target, artifact_for(target.model, state, **kw),
                                          context_rows=context_rows)}

    return tiny_decoder(vocab_size=vocab_size, seed=seed, extra=extra)


def test_drafts_are_the_hand_computed_heads():
    model = tiny_model("target", 0)
    target = CachedLM(model)
    drafter = MTPDrafter(target, artifact_for(model, trained_head()))
    ids = greedy(model, [5, 17, 300, 41, 9], 7)
    hidden = teacher_hidden(model, ids)
    drafter.observe_target(0, hidden[:len(ids) - 1])
    drafter.configure(DraftSettings())
    proposal = drafter.propose(ids, 3, Shaping(0.0), None)
    ref, drafted = reference_chain(drafter.head, model, hidden, ids, len(ids) - 2)
    assert proposal.tokens == drafted
    for q, logits in zip(proposal.q_token, ref):
        assert abs(q - float(torch.softmax(logits, -1).max())) < 1e-4


def test_greedy_output_is_the_targets_own():
    decoder = mtp_decoder(state=trained_head())
    model = decoder.target.model
    for prompt in PROMPTS:
        _, plain = run(decoder, prompt, method="ar", max_new_tokens=40)
        _, spec = run(decoder, prompt, method="mtp", draft_len=3, max_new_tokens=40)
        assert list(spec.token_ids) == list(plain.token_ids) == greedy(model, prompt, 40)[len(prompt):]
        assert 0 < spec.accepted < spec.drafted  # the test exercises acceptance and rejection
        assert spec.per_position[2] > 0  # third-step drafts were accepted too


@pytest.mark.parametrize("context_rows", [False, True])
def test_greedy_with_a_trimmed_vocabulary(context_rows):
    """Trimmed rows: drafts only from the first 100 ranked tokens; with context rows also from
    the tokens already in the context (prompt and answer so far), and some drafts need them."""
    ranking = torch.randperm(V, generator=torch.Generator().manual_seed(4))
    decoder = mtp_decoder(state=trained_head(), ranking=ranking, k=100, context_rows=context_rows)
    kept = set(ranking[:100].tolist())
    outside = 0
    for prompt in PROMPTS:
        _, plain = run(decoder, prompt, method="ar", max_new_tokens=30)
        events, spec = run(decoder, prompt, method="mtp", draft_len=3, max_new_tokens=30)
        assert spec.token_ids == plain.token_ids
        context = list(prompt)
        for e in events:
            if type(e).__name__ == "Drafted":
                assert all(x in kept or (context_rows and x in context) for x in e.tokens)
                outside += sum(x not in kept for x in e.tokens)
            elif type(e).__name__ == "Verified":
                context += list(e.emitted)
    assert (outside > 0) == context_rows


def test_the_cache_holds_only_committed_positions():
    decoder = mtp_decoder(state=trained_head())
    drafter = decoder.drafter("mtp")
    prompt = [5, 17, 300, 41, 9]
    ids = list(prompt)
    for event in decoder.run(prompt, Controls(method="mtp", draft_len=3, max_new_tokens=30)):
        name = type(event).__name__
        if name == "Drafted":  # just after a proposal: entries 0..n-1, from the committed ids
            assert drafter.cached_positions() == len(ids) - 1
            assert drafter.cached_ids == ids
        elif name == "Verified":
            ids += list(event.emitted)
    # another method moves the target on; mtp then drafts from recomputed states
    run(decoder, ids + [77, 78], method="ar", max_new_tokens=5)
    events, spec = run(decoder, ids + [77, 78, 79], method="mtp", draft_len=3, max_new_tokens=8)
    last = [e for e in events if type(e).__name__ == "Drafted" and e.draft_len > 0][-1]
    final = (ids + [77, 78, 79] + list(spec.token_ids))[:last.context_len]  # the last proposal's ids
    # the cached keys and values are those of a fresh drafter over the same committed ids
    fresh = MTPDrafter(decoder.target, artifact_for(decoder.target.model, trained_head()))
    fresh.observe_target(0, teacher_hidden(decoder.target.model, final)[:len(final) - 1])
    fresh.configure(DraftSettings())
    fresh.propose(final, 1, Shaping(0.0), None)
    n = drafter.cached_positions()
    assert n == fresh.cached_positions() == len(final) - 1
    for mine, theirs in zip(drafter.cache.layers, fresh.cache.layers):
        torch.testing.assert_close(mine.keys, theirs.keys, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(mine.values, theirs.values, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_a_quantized_head_changes_the_drafts_not_the_output(mode):
    """--draft-quant quantizes the head's own linears (W and its decoder layer, as the session
    does): greedy output of mtp and mtp-tree is still the target's own."""
    from specscope.core.drafters.mtp_tree import MTPTreeDrafter
    from specscope.core.quant import QuantLinear, quantize_model

    def extra(target, draft):
        art = artifact_for(target.model, trained_head())
        before = art.head.proj.weight.detach().clone()
        assert quantize_model(art.head, mode) == 8  # W, q k v o, gate up down
        assert isinstance(art.head.proj, QuantLinear) and not torch.equal(art.head.proj.weight, before)
        return {"mtp": lambda: MTPDrafter(target, art), "mtp-tree": lambda: MTPTreeDrafter(target, art)}

    decoder = tiny_decoder(vocab_size=V, seed=0, extra=extra)
    for method in ("mtp", "mtp-tree"):
        accepted = drafted = 0
        for prompt in PROMPTS + [[400, 3, 77, 12]]:
            _, plain = run(decoder, prompt, method="ar", max_new_tokens=30)
            _, spec = run(decoder, prompt, method=method, draft_len=3, max_new_tokens=30)
            assert spec.token_ids == plain.token_ids, method
            accepted, drafted = accepted + spec.accepted, drafted + spec.drafted
        assert 0 < accepted < drafted, method  # both acceptance and rejection happened


def test_states_recomputed_after_a_method_switch_are_read_a_chunk_a_pass():
    # after another method moved the target on, the head's missing states are recomputed over
    # the whole context: in prefill-sized passes, not one pass with a context x context mask
    decoder = mtp_decoder(state=trained_head())
    decoder.target.prefill_chunk = 8
    model = decoder.target.model
    prompt = greedy(model, [5, 17, 300, 41, 9], 30)
    run(decoder, prompt, method="mtp", draft_len=3, max_new_tokens=4)
    _, plain = run(decoder, prompt + [77, 78], method="ar", max_new_tokens=4)
    ids = prompt + [77, 78] + list(plain.token_ids)
    drafter = decoder.drafter("mtp")
    passes = []
    hook = model.base_model.register_forward_pre_hook(
        lambda m, a, k: passes.append(k["input_ids"].shape[-1]), with_kwargs=True)
    try:
        drafter.configure(DraftSettings())
        drafter.propose(ids, 3, Shaping(0.0), None)
    finally:
        hook.remove()
    assert passes and max(passes) <= 8 and sum(passes) >= len(ids) - 1
    torch.testing.assert_close(drafter.hidden, teacher_hidden(model, ids)[:len(drafter.hidden)],
                               rtol=1e-4, atol=1e-4)
