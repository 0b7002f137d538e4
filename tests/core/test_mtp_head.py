"""FastMTP's head and its training, on the tiny seeded target in float32.

The unrolled training forward is checked against a plain-torch recomputation from the same
weights (mtp_reference.py), a few optimiser steps must lower the loss, and the artifact must
round-trip and refuse another target or tokenizer.
"""
import pytest
import torch

from specscope.core.errors import SpecScopeError
from specscope.core.lm import CachedLM
from specscope.core.mtp import MTPHead, load_artifact, read_meta, save_artifact
from specscope.core.mtp_train import Sample, label_rows, sequence_loss, teacher_hidden, unrolled_logits
from specscope.core.tiny import tiny_model, tiny_tokenizer
from tests.core.mtp_reference import reference_chain

V = 1024


def make_head(model, seed=0, noise=0.05, init="embed"):
    """A head initialised from the target, then perturbed so no weight is a trivial copy."""
    head = MTPHead(model)
    head.init_from(model, init)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(noise * torch.randn(p.shape, generator=g))
    return head.eval()


def sequence(model, n=14, seed=3):
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(3, V, (6,), generator=g).tolist()
    ids = list(prompt)
    with torch.no_grad():
        while len(ids) < n:  # the target's own greedy continuation, as in self-distillation
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids, len(prompt)


def test_unrolled_training_forward_matches_hand_computation():
    model = tiny_model("target", 0)
    head = make_head(model)
    ids, _ = sequence(model)
    hidden = teacher_hidden(model, ids)
    with torch.no_grad():
        for first in (0, 4):
            logits = unrolled_logits(head, model.get_input_embeddings(), hidden, ids, 3,
                                     model.lm_head.weight, first)
            for t in (first, first + 3, len(ids) - 3):
                ref, _ = reference_chain(head, model, hidden, ids, t, step_tokens=(ids + [0, 0])[t + 2:t + 4])
                for j in range(3):
                    torch.testing.assert_close(logits[j][t - first], ref[j], atol=2e-4, rtol=2e-4)


def test_the_reference_sees_a_broken_head():
    """The comparison above can fail: feeding the state back before Norm_out is caught."""
    model = tiny_model("target", 0)
    head = make_head(model)
    ids, _ = sequence(model)
    hidden = teacher_hidden(model, ids)
    norm = head.norm_out
    head.norm_out = torch.nn.Identity()  # the head's states now skip the output norm
    with torch.no_grad():
        logits = unrolled_logits(head, model.get_input_embeddings(), hidden, ids, 3, model.lm_head.weight)
    head.norm_out = norm
    ref, _ = reference_chain(head, model, hidden, ids, 5, step_tokens=ids[7:9])
    assert not torch.allclose(logits[1][5], ref[1], atol=1e-3)


def test_a_few_training_steps_lower_the_loss():
    model = tiny_model("target", 0)
    head = make_head(model, noise=0.0)
    ids, start = sequence(model, n=24)
    sample = Sample(ids, start, teacher_hidden(model, ids))
    rows = label_rows(torch.arange(V), V, V)
    embed, weight = model.get_input_embeddings(), model.lm_head.weight
    before, _ = sequence_loss(head, embed, weight, rows, sample, 3, 0.6)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    for _ in range(5):
        loss, _ = sequence_loss(head, embed, weight, rows, sample, 3, 0.6)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, stats = sequence_loss(head, embed, weight, rows, sample, 3, 0.6)
    assert float(after) < 0.5 * float(before)
    assert stats.chain_seen[0] == len(ids) - start  # every answer token is a step-1 label


def test_labels_are_answer_tokens_inside_the_kept_rows():
    model = tiny_model("target", 0)
    ids, start = sequence(model, n=20)
    ranking = torch.randperm(V, generator=torch.Generator().manual_seed(0))
    rows = label_rows(ranking, 600, V)
    from specscope.core.mtp_train import step_labels

    for j, lab in enumerate(step_labels(ids, start, 3, rows), 1):
        for t, row in enumerate(lab.tolist()):
            target = t + j + 1
            if target >= len(ids) or target < start or ids[target] not in ranking[:600].tolist():
                assert row == -100
            else:
                assert int(ranking[row]) == ids[target]


def test_artifact_round_trip_and_refusals(tmp_path):
    model = tiny_model("target", 0)
    target = CachedLM(model)
    tok = tiny_tokenizer()
    head = make_head(model)
    ranking = torch.randperm(V, generator=torch.Generator().manual_seed(1))
    path = save_artifact(tmp_path / "mtp.safetensors", head, ranking, 100, target, "tiny-random:target",
                         tok, "tiny-random", {"steps": 3}, torch.float32)
    art = load_artifact(path, target, "tiny-random:target", tok)
    assert art.k == 100 and torch.equal(art.ranking, ranking)
    assert art.meta["training"] == {"steps": 3}
    for name, tensor in head.state_dict().items():
        assert torch.equal(art.head.state_dict()[name], tensor), name
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temp file left behind

    other = CachedLM(tiny_model("target", 1))
    with pytest.raises(SpecScopeError, match="another target"):
        load_artifact(path, other, "tiny-random:target", tok)
    other_tok = tiny_tokenizer(vocab_size=900)
    with pytest.raises(SpecScopeError, match="another tokenizer"):
        load_artifact(path, target, "tiny-random:target", other_tok)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(SpecScopeError, match="not a specscope MTP head"):
        read_meta(junk)
    with pytest.raises(SpecScopeError, match="not found"):
        read_meta(tmp_path / "missing.safetensors")


def test_target_labels_line_each_step_up_with_the_target_state_it_predicts():
    """KL is zero when step j at origin t equals the target's distribution at t + j, and not zero
    when the steps are off by one position (the mistake this guards against)."""
    from specscope.core.mtp_train import soft_terms

    g = torch.Generator().manual_seed(0)
    T, K, first = 12, 7, 3
    probs = torch.softmax(torch.randn(T, K, generator=g), -1)
    n = T - 2
    right = [torch.log(probs[first + j:first + j + n - first]) for j in (1, 2, 3)]
    right[2] = torch.cat([right[2], torch.zeros(1, K)])  # origin T-3 at step 3 has no target state
    for term in soft_terms(right, probs, first):
        assert float(term) < 1e-6
    shifted = [torch.log(probs[first + j - 1:first + j - 1 + n - first]) for j in (1, 2, 3)]
    for term in soft_terms(shifted, probs, first):
        assert float(term) > 1e-2


def test_training_on_the_targets_distributions_uses_every_position_and_lowers_the_loss():
    model = tiny_model("target", 0)
    head = make_head(model, noise=0.0)
    ids, start = sequence(model, n=24)
    sample = Sample(ids, start, teacher_hidden(model, ids))
    ranking = torch.randperm(V, generator=torch.Generator().manual_seed(2))
    rows = label_rows(ranking, 700, V)
    embed, weight = model.get_input_embeddings(), model.lm_head.weight.detach()[ranking[:700]]
    before, stats = sequence_loss(head, embed, weight, rows, sample, 3, 0.6, "target")
    assert stats.tokens == len(ids) - 2  # every origin, prompt included, is a step-1 label
    assert stats.chain_seen[0] <= len(ids) - start  # acceptance still counts answer tokens only
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    for _ in range(5):
        loss, _ = sequence_loss(head, embed, weight, rows, sample, 3, 0.6, "target")
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, _ = sequence_loss(head, embed, weight, rows, sample, 3, 0.6, "target")
    assert float(after) < 0.5 * float(before)


def test_corpus_chunks_cut_consecutive_pieces_within_the_limit():
    from specscope.core.mtp_train import corpus_chunks

    ids = list(range(11))
    assert corpus_chunks(ids, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert corpus_chunks(ids, 4, limit=9) == [[0, 1, 2, 3], [4, 5, 6, 7]]  # a 1-token tail holds no label
    assert corpus_chunks(ids, 5, limit=0) == []


@pytest.mark.filterwarnings("error::FutureWarning")  # a cache passed by a deprecated name
def test_answers_sharing_a_prompt_get_the_hidden_states_of_one_pass_each():
    """teacher_hidden_shared runs the prompt once and each answer from its KV cache: the states
    are those of one teacher-forced pass over prompt + answer, whatever came before."""
    from specscope.core.mtp_train import teacher_hidden_shared

    model = tiny_model("target", 0)
    ids, start = sequence(model, n=20)
    prompt = ids[:start]
    tails = [ids[start:], [7, 8, 9, 10], [], ids[start:start + 3]]
    for tail, got in zip(tails, teacher_hidden_shared(model, prompt, tails)):
        want = teacher_hidden(model, prompt + tail)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("error::FutureWarning")  # a cache passed by a deprecated name
def test_the_heads_block_reads_and_grows_its_cache():
    """Steps fed a few positions at a time through the head's cache give the states of one
    pass over them all. A cache passed by a name the block's forward does not take lands in its
    **kwargs: the block then runs without it (transformers 4.5x with `cache=`)."""
    from specscope.core.mtp import additive, cache_len, causal_after

    model = tiny_model("target", 0)
    head = make_head(model)
    n, d = 9, model.config.hidden_size
    g = torch.Generator().manual_seed(1)
    state, emb = torch.randn(1, n, d, generator=g), torch.randn(1, n, d, generator=g)
    pos = torch.arange(n)[None]
    with torch.no_grad():
        whole = head.step(state, emb, pos, additive(causal_after(0, n)), None)
        cache, parts = head.new_cache(), []
        for a, b in [(0, 4), (4, 5), (5, 9)]:
            parts.append(head.step(state[:, a:b], emb[:, a:b], pos[:, a:b],
                                   additive(causal_after(a, b - a)), cache))
    assert cache_len(cache) == n
    torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=1e-5, atol=1e-5)


def test_loss_from_keeps_the_prompt_as_context_only():
    """A sample whose prompt another sample trains on: its loss covers origins from loss_from
    on, and those origins still attend to the whole prompt (the same per-origin terms as in the
    full sequence, not those of a sequence cut at loss_from)."""
    from specscope.core.mtp_train import soft_terms, target_distributions

    model = tiny_model("target", 0)
    head = make_head(model)
    ids, start = sequence(model, n=24)
    hidden = teacher_hidden(model, ids)
    ranking = torch.randperm(V, generator=torch.Generator().manual_seed(2))
    rows = label_rows(ranking, 700, V)
    embed, weight = model.get_input_embeddings(), model.lm_head.weight.detach()[ranking[:700]]
    k = start - 2
    with torch.no_grad():
        loss, stats = sequence_loss(head, embed, weight, rows, Sample(ids, start, hidden, start, k),
                                    3, 0.6, "target")
        full_loss, full_stats = sequence_loss(head, embed, weight, rows, Sample(ids, start, hidden),
                                              3, 0.6, "target")
        full = unrolled_logits(head, embed, hidden, ids, 3, weight, 0)
        terms = soft_terms([lg[k:] for lg in full], target_distributions(hidden, weight), k)
    assert stats.tokens == len(ids) - 2 - k and full_stats.tokens == len(ids) - 2
    want = sum(0.6 ** j * t for j, t in enumerate(terms))
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
    assert abs(float(loss) - float(full_loss)) > 1e-4  # the prompt's origins did count before
    cut = Sample(ids[k:], start - k, hidden[k:])  # what cutting the prompt off would give
    with torch.no_grad():
        cut_loss, _ = sequence_loss(head, embed, weight, rows, cut, 3, 0.6, "target")
    assert abs(float(cut_loss) - float(loss)) > 1e-4
