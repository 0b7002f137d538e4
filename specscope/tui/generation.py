"""Drive the engine from a worker thread: batch its events, honour pause/step and cancellation.

The engine needs no change for teaching mode: the worker simply waits at step boundaries (after
`Started` and after each `Verified`) before pulling the next event from the generator, and the
engine reads `Controls` when the next step begins, so whatever the user changed while paused
applies to that step.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from specscope.core.events import Event, Finished, Prefilling, Started, Summary, Verified

BATCH_S = 0.1  # events of this long travel to the UI in one message (10 a second at most)

# One engine run at a time per process: a new run (regenerate, baseline) waits until a stopped one
# has left the models, since the KV caches are shared.
ENGINE_LOCK = threading.Lock()


class Gate:
    """Pause / step for teaching mode, shared by the UI thread and the generation worker."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._paused = False
        self._credits = 0  # steps the user let through while paused
        self.waiting = False  # the worker is parked at a step boundary
        self.parks = 0  # how many times it parked (tests wait for this to move)

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._credits = 0

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._credits = 0
            self._cond.notify_all()

    def step(self) -> None:
        """While paused: let exactly one draft-verify cycle through. While running: pause."""
        with self._cond:
            if self._paused:
                self._credits += 1
            self._paused = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Make a parked worker look at its cancellation flag now."""
        with self._cond:
            self._cond.notify_all()

    def wait(self, cancelled: Callable[[], bool]) -> float:
        """Block while paused and no step is granted; return the seconds spent waiting."""
        t = time.perf_counter()
        with self._cond:
            if self._paused and self._credits == 0:
                self.parks += 1
            while self._paused and self._credits == 0 and not cancelled():
                self.waiting = True
                self._cond.wait(0.2)
            self.waiting = False
            if self._credits:
                self._credits -= 1
        return time.perf_counter() - t


def drive(events: Iterator[Event], gate: Gate, emit: Callable[[tuple[Event, ...], float], None],
          cancelled: Callable[[], bool], batch_s: float = BATCH_S) -> tuple[Summary | None, float]:
    """Pull every event, hand them to `emit(batch, active_s)` in batches; return (summary, active_s).

    `active_s` counts the seconds spent generating, not those parked by the gate. The summary is
    None when the run was cancelled. The generator is closed on every way out.
    """
    t0 = time.perf_counter()
    paused_s = 0.0
    last = t0
    batch: list[Event] = []
    summary = None
    try:
        for event in events:
            batch.append(event)
            if isinstance(event, Finished):
                summary = event.summary
                break
            park = isinstance(event, (Started, Verified)) and gate.paused  # read once: no race
            now = time.perf_counter()
            # prefill progress comes seconds apart: show each at once, not with the next chunk
            if now - last >= batch_s or park or isinstance(event, Prefilling):
                emit(tuple(batch), now - t0 - paused_s)
                batch = []
                last = now
            if cancelled():
                break
            if park:
                paused_s += gate.wait(cancelled)
                if cancelled():
                    break
    finally:
        events.close()
        active_s = time.perf_counter() - t0 - paused_s
        if batch:
            emit(tuple(batch), active_s)
    return summary, active_s
