"""`mtp train` interrupted at any stage and run again goes on where it stopped: the answers made
are kept (saved after each batch), the hidden states computed are kept, the optimizer, schedule
and data order carry on; on a tiny float32 target the head it ends with equals, bit for bit, the
head of a run that was never interrupted (the schedule runs over --tokens: nothing depends on
the clock)."""
import math
import threading

import pytest
import torch

import specscope.train.loop as loop
from specscope.train.events import Progress, Started
from specscope.train.run import TrainOptions, run
from specscope.train.state import state_path

PROMPTS = "def add(a, b):\nthe cat sat on\nsort a list\nwrite a loop\nsplit a string\nread a file\n"


def options(tmp_path, name):
    texts = tmp_path / "prompts.txt"
    texts.write_text(PROMPTS)
    return TrainOptions(profile="tiny-random", prompts=texts, limit=10, held=1, max_new_tokens=6,
                        batch=2, samples=2, temperature=1.0, tokens=300, keep="last", init="embed",
                        out=tmp_path / name / "head.safetensors")


def stop_at(stage, count, key="done"):
    """An on_event that stops the run (as Ctrl-C) once `stage` reports `count` done (or more)."""
    fired = []

    def on_event(event):
        if (isinstance(event, Progress) and event.stage == stage and not fired
                and threading.current_thread() is threading.main_thread()
                and (event.fields.get(key) if key != "done" else event.done) >= count):
            fired.append(event)
            raise KeyboardInterrupt

    return on_event


def stop_in(label, count):
    """Stops the run once the answers stage whose label starts with `label` has `count` done."""
    current, fired = [""], []

    def on_event(event):
        if isinstance(event, Started):
            current[0] = event.label
        elif (isinstance(event, Progress) and current[0].startswith(label) and not fired
              and threading.current_thread() is threading.main_thread() and event.done >= count):
            fired.append(event)
            raise KeyboardInterrupt

    return on_event


def weights(path):
    return torch.load(state_path(path), weights_only=True)["weights"]


@pytest.fixture
def quiet(monkeypatch, tmp_path):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(loop, "EVAL_EVERY_S", math.inf)  # evaluations at the start and the end only


def test_a_run_interrupted_in_every_stage_ends_with_the_uninterrupted_runs_head(tmp_path, quiet):
    whole = options(tmp_path, "whole")
    done = run(whole)
    assert not done.interrupted and done.result["tokens"] >= 300

    parts = options(tmp_path, "parts")
    with pytest.raises(KeyboardInterrupt):  # in the target's answers, after three batches
        run(parts, stop_in("self-distillation: the target answers", 3))
    with pytest.raises(KeyboardInterrupt):  # in the drafter's sampled answers, after two
        run(parts, stop_in("self-distillation: sampled answers #1", 2))
    assert not parts.out.is_file()
    with pytest.raises(KeyboardInterrupt):  # in the hidden states
        run(parts, stop_at("hidden", 3))
    assert not parts.out.is_file()
    stopped = run(parts, stop_at("train", 4, "steps"))  # in training: the head and its state kept
    assert stopped.interrupted and stopped.answers_resumed > 0 and stopped.hidden_loaded >= 3
    assert stopped.result["steps"] == 4
    last = run(parts)  # the same command again: goes on with the head (no --resume needed)
    assert not last.interrupted and last.resumed_from == parts.out
    assert last.answers_resumed == done.n_answers + done.n_held + done.n_estimate and last.hidden_new == 0
    assert last.result["steps"] == done.result["steps"] and last.result["tokens"] == done.result["tokens"]
    a, b = weights(whole.out), weights(parts.out)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_the_same_command_after_a_finished_run_adds_training(tmp_path, quiet):
    first = run(options(tmp_path, "h"))
    again = run(options(tmp_path, "h"))
    assert again.resumed_from is not None and again.hidden_new == 0
    assert again.result["steps"] > first.result["steps"]  # totals add up: a new schedule


@pytest.mark.slow  # two processes (about 30 s)
def test_kill_keeps_what_was_done_and_the_same_command_goes_on(tmp_path):
    """`kill` (SIGTERM) in the middle of training, in a real process: it stops as Ctrl-C does
    (exit 130, the head and its resume state written), and the same command goes on with it."""
    import os
    import re
    import signal
    import subprocess
    import sys

    texts = tmp_path / "prompts.txt"
    texts.write_text(PROMPTS)
    out = tmp_path / "head.safetensors"
    env = {**os.environ, "SPECSCOPE_CACHE": str(tmp_path / "cache"),
           "SPECSCOPE_PROGRESS_INTERVAL": "0", "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "specscope", "mtp", "train", "-p", "tiny-random", "--prompts",
               str(texts), "--held", "1", "--max-new-tokens", "6", "--samples", "1",
               "--tokens", "10000000", "--out", str(out)]

    def run_until(marker):
        """Run the command; SIGTERM it at its first line of training with tokens trained (after
        `marker` was printed)."""
        p = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        seen = []
        for line in p.stderr:
            seen.append(line)
            if re.match(r"train: .*, [1-9][\d,]* tokens", line) and marker in "".join(seen):
                p.send_signal(signal.SIGTERM)
                break
        rest, err = p.communicate(timeout=300)
        return p.returncode, "".join(seen) + err, rest

    code, err, report = run_until("plan for 30 min")
    assert code == 130, err
    assert "interrupted" in report and out.is_file(), err
    first = torch.load(state_path(out), weights_only=True)["schedule"]
    assert not first["finished"]
    code, err, report = run_until("going on with the head")
    assert code == 130, err
    assert "resumed from" in report
    second = torch.load(state_path(out), weights_only=True)["schedule"]
    assert second["steps"] >= first["steps"] and second["budget_tokens"] == 10000000
    from specscope.core.mtp import read_meta

    assert read_meta(out)[0]["training"]["init"] == "resumed"
