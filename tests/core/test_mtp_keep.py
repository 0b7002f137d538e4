"""`mtp train --keep best`: the head ends with the weights that scored best on the held-apart
prompts, not the last ones, and the artifact on disk is always the best so far.

A tiny target, a learning rate far too high (the head gets worse as it trains: the case the
option exists for), and an evaluation after every step."""
import contextlib

import pytest
import torch

import specscope.train.loop as loop
from specscope.core.mtp_train import Sample, evaluate, label_rows, teacher_hidden
from specscope.core.tiny import tiny_model
from tests.core.test_mtp_head import V, make_head, sequence


def run(keep, monkeypatch, lr=0.05):
    model = tiny_model("target", 0)
    head = make_head(model, noise=0.0)
    samples = []
    for seed in range(4):
        ids, start = sequence(model, n=20, seed=seed)
        samples.append(Sample(ids, start, teacher_hidden(model, ids)))
    train, held = samples[:2], samples[2:]
    rows = label_rows(torch.arange(V), V, V)
    embed, weight = model.get_input_embeddings(), model.lm_head.weight.detach()
    seen = []  # every evaluation's (loss, acceptance), in order

    def observed(*args, **kwargs):
        out = evaluate(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(loop, "evaluate", observed)
    monkeypatch.setattr(loop, "EVAL_EVERY_S", 0.0)
    saved = []  # (result, weights) per checkpoint

    def checkpoint(result):
        saved.append((result, {k: v.clone() for k, v in head.state_dict().items()}))

    result, interrupted = loop.train_loop(head, embed, weight, rows, train, held, 3, 0.6, lr, 5.0,
                                          400, contextlib.nullcontext(), 0, checkpoint,
                                          lambda event: None, "tokens", None, keep)
    assert not interrupted
    with torch.no_grad():
        final = evaluate(head, embed, weight, rows, held, 3, 0.6, "tokens")
    return head, result, saved, seen, final


def test_keep_best_ends_with_the_best_evaluated_weights(monkeypatch):
    head, result, saved, seen, final = run("best", monkeypatch)
    scores = [sum(acc) for _, acc in seen]
    assert len(seen) > 5
    assert max(scores) > scores[-1]  # the run got worse: the last weights are not the best
    # what the head holds now scores the best evaluation, and the result says so
    assert sum(final[1]) == pytest.approx(max(scores))
    assert result["held_acceptance"] == pytest.approx(final[1])
    assert result["held_loss"] == pytest.approx(final[0])
    assert sum(result["last"]["held_acceptance"]) == pytest.approx(scores[-1])
    assert result["kept_step"] < result["steps"]
    # checkpoints only on improvement: each better than the one before, the last equal to the head
    saved_scores = [sum(r["held_acceptance"]) for r, _ in saved]
    assert saved_scores == sorted(set(saved_scores))
    for name, value in head.state_dict().items():
        torch.testing.assert_close(value, saved[-1][1][name], rtol=0, atol=0)


def test_keep_last_ends_with_the_last_weights(monkeypatch):
    head, result, saved, seen, final = run("last", monkeypatch)
    scores = [sum(acc) for _, acc in seen]
    assert max(scores) > scores[-1]
    assert sum(final[1]) == pytest.approx(scores[-1])  # the last weights, though worse
    assert "last" not in result and result["kept_step"] == result["steps"]
    assert len(saved) == len(seen) - 2  # a checkpoint at every evaluation but the first and final
