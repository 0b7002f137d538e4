"""What training reports: plain data, handed to one callback (`on_event`).

A stage (self-distillation, hidden states, training) is a `Started`, then `Progress` events,
then an `Ended`. A stage reports at least every HEARTBEAT_S seconds while it runs, within a long
batch too (a decoding step or a trained sequence is the unit), so a front end without a
terminal can print a line at a steady pace. `Note` is a sentence for the user.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HEARTBEAT_S = 5.0  # the longest a running stage goes without an event (beyond one step)


@dataclass(frozen=True)
class Started:
    stage: str  # "answers", "hidden", "train"
    label: str  # what the user reads
    total: float
    done: float = 0.0
    fields: dict = field(default_factory=dict)  # e.g. tokens so far


@dataclass(frozen=True)
class Progress:
    stage: str
    done: float
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ended:
    stage: str


@dataclass(frozen=True)
class Note:
    text: str
    warning: bool = False


Event = Started | Progress | Ended | Note
OnEvent = Callable[[Event], None]


def ignore(event: Event) -> None:
    pass


class Beat:
    """Calls `send()` when `every` seconds have passed since the last call went out (or
    `force`): a stage's progress within a batch, without an event per decoding step.

    As a context manager it also runs a timer thread that sends when nothing went out for
    `every` seconds: one step that takes minutes (a large batch's prompt read) still reports."""

    def __init__(self, send: Callable[[], None], every: float | None = None) -> None:
        self.send = send
        self.every = HEARTBEAT_S if every is None else every
        self.last = time.monotonic()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, *_, force: bool = False) -> None:
        with self.lock:
            now = time.monotonic()
            if force or now - self.last >= self.every:
                self.last = now
                self.send()

    def __enter__(self) -> Beat:
        self._thread = threading.Thread(target=self._run, name="specscope-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every / 2):
            self()
