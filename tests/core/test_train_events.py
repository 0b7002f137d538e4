"""Training reports through plain events, and a long stage reports at every heartbeat, inside
a batch too: a front end without a terminal can print a line at a steady pace."""
from types import SimpleNamespace

import specscope.train.caches as caches
import specscope.train.events as events
from specscope.train.events import Ended, Progress, Started


def test_a_long_batch_of_answers_reports_at_every_heartbeat(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(events, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    def slow(model, prompts, max_new_tokens, eos, pad, temperature, seed, on_step=None):
        for _ in range(12):  # one batch: twelve decoding steps of 10 s
            clock[0] += 10.0
            on_step(1)
        return [[7, 8]] * len(prompts)

    monkeypatch.setattr(caches, "self_distill", slow)
    seen = []
    answers, resumed = caches.self_distil_cached(
        None, [[1, 2], [3]], 2, set(), 0, 8, tmp_path / "answers.json",
        lambda e: seen.append((clock[0], e)))
    assert answers == [[7, 8], [7, 8]] and resumed == 0
    assert isinstance(seen[0][1], Started) and seen[0][1].total == 2
    assert isinstance(seen[-1][1], Ended)
    times = [t for t, e in seen if isinstance(e, (Started, Progress))]
    assert len(times) >= 12  # every step, here: each takes longer than a heartbeat
    assert max(b - a for a, b in zip(times, times[1:])) <= max(events.HEARTBEAT_S, 10.0)
    assert seen[-2][1] == Progress("answers", 2, {"tokens": 4})  # the batch done, then saved
    # the saved answers are reused: no batch runs again
    again = []
    assert caches.self_distil_cached(None, [[1, 2], [3]], 2, set(), 0, 8,
                                     tmp_path / "answers.json", again.append)[1] == 2
    assert [type(e) for e in again] == [Started, Ended]


def test_a_step_that_runs_long_still_reports_from_the_timer():
    """Inside `with Beat(...)`, a step that never calls the beat (one long decoding step, a
    large batch's prompt read) still sends: the timer thread does, while the main thread waits."""
    import threading

    sent = threading.Event()
    senders = []

    def send():
        senders.append(threading.current_thread())
        sent.set()

    with events.Beat(send, every=0.01):
        assert sent.wait(timeout=60)  # the main thread blocked: only the timer can send
    assert senders and all(t is not threading.main_thread() for t in senders)
    n = len(senders)
    threading.Event().wait(0.05)
    assert len(senders) == n  # stopped with the block


def test_answer_batches_hold_similar_lengths_and_keep_the_lists_first_prompts_first(tmp_path, monkeypatch):
    """A batch is as wide as its longest prompt: batches are cut by length (a short prompt never
    waits on a long one's padding), and run in the order of their earliest prompt, so a deadline
    leaves the list's first prompts (a spread of categories) answered."""
    lengths = [700, 20, 650, 30, 25, 690, 35, 640, 22, 660, 28, 710]
    prompts = [[i] * n for i, n in enumerate(lengths)]
    ran = []

    def record(model, batch, max_new_tokens, eos, pad, temperature, seed, on_step=None):
        ran.append(sorted(len(p) for p in batch))
        return [[1]] * len(batch)

    monkeypatch.setattr(caches, "self_distill", record)
    caches.self_distil_cached(None, prompts, 2, set(), 0, 3, tmp_path / "a.json")
    # sorted: [20 22 25] [28 30 35] [640 650 660] [690 700 710]; prompt 0 (700) is in the last
    assert ran == [[690, 700, 710], [20, 22, 25], [640, 650, 660], [28, 30, 35]]
    # with a deadline: the required prompts (the first 2) first, then the rest's batches in the
    # order of their earliest prompt (prompt 2, 650 tokens, is the rest's first)
    ran.clear()
    caches.self_distil_cached(None, prompts, 2, set(), 0, 3, tmp_path / "b.json",
                              deadline=float("inf"), required=2)
    assert ran == [[20, 700], [650, 660, 690], [30, 35, 640], [22, 25, 28], [710]]
    # a deadline already past: only the required batch runs
    ran.clear()
    answers, _ = caches.self_distil_cached(None, prompts, 2, set(), 0, 3, tmp_path / "c.json",
                                           deadline=0.0, required=2)
    assert ran == [[20, 700]] and [a is not None for a in answers] == [True, True] + [False] * 10
