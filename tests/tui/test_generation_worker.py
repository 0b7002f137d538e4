"""The worker's loop without a UI: batching, pause/step at step boundaries, cancellation."""
import threading
import time

from specscope.core.events import Drafted, Finished, Started, Verified
from specscope.core.stats import Stats
from specscope.tui.generation import Gate, drive


def fake_run(steps, closed):
    """An engine stand-in: Started, `steps` x (Drafted, Verified), Finished."""
    try:
        yield Started(3, "draft", 0.0)
        for i in range(steps):
            yield Drafted(i, 3 + i, "draft", 1, (7,), ("x",), (0.5,), (-1,), 0.0)
            yield Verified(i, (0.5,), (True,), 1, None, 8, "y", True, (7, 8), ("x", "y"), 0.0, 0.0)
        yield Finished(Stats().summary("max_new_tokens"))
    finally:
        closed.append(True)


def collect():
    batches = []
    return batches, lambda batch, active_s: batches.append(batch)


def test_everything_arrives_in_order_and_batches_merge_events():
    closed = []
    batches, emit = collect()
    summary, _ = drive(fake_run(5, closed), Gate(), emit, lambda: False, batch_s=60.0)
    assert summary is not None and closed == [True]
    assert len(batches) == 1  # a slow clock: one message for the whole run
    kinds = [e.kind for e in batches[0]]
    assert kinds == ["started"] + ["drafted", "verified"] * 5 + ["finished"]


def test_a_zero_interval_sends_every_event_at_once():
    batches, emit = collect()
    drive(fake_run(3, []), Gate(), emit, lambda: False, batch_s=0.0)
    assert [len(b) for b in batches] == [1] * 8


def test_paused_gate_lets_exactly_one_step_through_per_step_call():
    gate = Gate()
    gate.pause()
    batches, emit = collect()
    result = []
    worker = threading.Thread(target=lambda: result.append(
        drive(fake_run(4, []), gate, emit, lambda: False, batch_s=60.0)))
    worker.start()

    def wait_parks(n):
        end = time.time() + 10
        while not (gate.parks >= n and gate.waiting):
            assert time.time() < end
            time.sleep(0.005)

    def verified_seen():
        return sum(isinstance(e, Verified) for b in batches for e in b)

    wait_parks(1)
    assert verified_seen() == 0 and [e.kind for e in batches[0]] == ["started"]
    for n in (1, 2):
        gate.step()
        wait_parks(n + 1)
        assert verified_seen() == n  # flushed before parking, despite the slow clock
    gate.resume()
    worker.join(10)
    assert result[0][0] is not None and verified_seen() == 4


def test_cancelling_a_parked_run_closes_the_engine_and_returns_no_summary():
    gate = Gate()
    gate.pause()
    cancelled = threading.Event()
    closed = []
    result = []
    worker = threading.Thread(target=lambda: result.append(
        drive(fake_run(4, closed), gate, lambda b, a: None, cancelled.is_set)))
    worker.start()
    while not gate.waiting:
        time.sleep(0.005)
    cancelled.set()
    gate.wake()
    worker.join(5)
    assert not worker.is_alive() and closed == [True] and result[0][0] is None


def test_active_time_leaves_out_the_pause():
    gate = Gate()
    gate.pause()
    result = []
    worker = threading.Thread(target=lambda: result.append(
        drive(fake_run(1, []), gate, lambda b, a: None, lambda: False)))
    worker.start()
    time.sleep(0.3)
    gate.resume()
    worker.join(5)
    assert result[0][1] < 0.2
