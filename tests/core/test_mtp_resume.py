"""`mtp train --resume` continues the run it resumes: on a tiny float32 target, N steps, or k
steps then an interruption then a resume from the state on disk for the rest, end with the same
weights bit for bit (the optimizer's moments, the schedule's position and the data order carry
over; the weights come from the float32 state, not the artifact's rounded copy)."""
import contextlib
import math

import torch

import specscope.train.loop as loop
from specscope.core.mtp_train import Sample, label_rows, sequence_loss, teacher_hidden
from specscope.core.tiny import tiny_model
from specscope.train.events import Progress
from specscope.train.state import load_state, save_state, state_path
from tests.core.test_mtp_head import V, make_head, sequence

N, K = 9, 4  # steps in all; the interrupted run stops after K


def setup():
    model = tiny_model("target", 0)
    samples = []
    for seed in range(5):
        ids, start = sequence(model, n=20, seed=seed)
        samples.append(Sample(ids, start, teacher_hidden(model, ids)))
    rows = label_rows(torch.arange(V), V, V)
    return model, samples[:3], samples[3:], rows


def train(model, head, train_set, held, rows, tokens, on_event=None, resume=None, save=None,
          before=None):
    embed, weight = model.get_input_embeddings(), model.lm_head.weight.detach()
    return loop.train_loop(head, embed, weight, rows, train_set, held, 3, 0.6, 1e-2, math.inf,
                           tokens, contextlib.nullcontext(), 0, lambda result: None,
                           on_event or (lambda e: None), "tokens", before, "last", resume, save)


def stop_after(k):
    def on_event(event):
        if isinstance(event, Progress) and event.stage == "train" and event.fields["steps"] == k:
            raise KeyboardInterrupt

    return on_event


def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "EVAL_EVERY_S", math.inf)
    model, train_set, held, rows = setup()
    embed, weight = model.get_input_embeddings(), model.lm_head.weight.detach()
    [per_step] = {sequence_loss(make_head(model), embed, weight, rows, s, 3, 0.6, "tokens")[1].tokens
                  for s in train_set}  # labelled positions a step, the same for every sample
    budget = N * per_step  # more steps than samples: the resume crosses an epoch's end

    whole = make_head(model, noise=0.0).train()
    result, interrupted = train(model, whole, train_set, held, rows, budget)
    assert not interrupted and result["steps"] == N

    path = state_path(tmp_path / "head.safetensors")
    part = make_head(model, noise=0.0).train()
    first, interrupted = train(model, part, train_set, held, rows, budget, stop_after(K),
                               save=lambda state: save_state(path, "run", state))
    assert interrupted and first["steps"] == K
    # the command loads the artifact's copy of the weights first, rounded (bfloat16): the
    # state's float32 ones replace it
    resumed = make_head(model, noise=0.0).train()
    resumed.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in part.state_dict().items()})
    rest, interrupted = train(model, resumed, train_set, held, rows, budget,
                              resume=load_state(path, "run"), before=first)
    assert not interrupted and rest["steps"] == N  # totals add up
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_a_state_of_another_run_is_not_used(tmp_path):
    path = state_path(tmp_path / "head.safetensors")
    assert path.name == "head.train.pt"
    save_state(path, "one", {"weights": {}})
    assert load_state(path, "one")["weights"] == {}
    assert load_state(path, "two") is None and load_state(path, None) is None
    path.write_bytes(b"not a state")
    assert load_state(path, "one") is None
