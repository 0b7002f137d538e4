"""What training reports: plain data, handed to one callback (`on_event`).

A stage (self-distillation, hidden states, training) is a `Started`, then `Progress` events,
then an `Ended`. A stage reports at least every HEARTBEAT_S seconds while it runs, within a long
batch too (a decoding step or a trained sequence is the unit), so a front end without a
terminal can print a line at a steady pace. `Note` is a sentence for the user.
"""
from __future__ import annotations

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
    `force`): a stage's progress within a batch, without an event per decoding step."""

    def __init__(self, send: Callable[[], None], every: float = HEARTBEAT_S) -> None:
        self.send = send
        self.every = every
        self.last = time.monotonic()

    def __call__(self, *_, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            self.send()
