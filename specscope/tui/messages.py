"""Textual messages that carry engine events and loading progress from worker threads to the UI.

Workers call `App.post_message` (thread-safe). Engine events travel in batches: a worker groups
the events of ~0.1 s into one message, so a fast engine (hundreds of steps a second) costs the UI
a few updates a second instead of one per token, and the widgets append whole batches at once.
"""
from __future__ import annotations

from textual.message import Message

from specscope.core.events import Event, Summary


class LoadProgress(Message):
    """One stage of model loading or conversion moved: (stage, done, total) as core reports it."""

    def __init__(self, stage: str, done: float, total: float | None) -> None:
        super().__init__()
        self.stage = stage
        self.done = done
        self.total = total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LoadProgress) and message.stage == self.stage


class SessionReady(Message):
    """The models are loaded; `session` is a specscope.session.Session."""

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session


class LoadFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class EngineEvents(Message):
    """A batch of engine events from one run, in order.

    `active_s`: seconds the run has been generating, not counting time paused in teaching mode.
    """

    def __init__(self, run_id: int, events: tuple[Event, ...], active_s: float) -> None:
        super().__init__()
        self.run_id = run_id
        self.events = events
        self.active_s = active_s


class RunEnded(Message):
    """A run is over: finished (`summary`), stopped by the user (`summary` None), or failed."""

    def __init__(self, run_id: int, summary: Summary | None, active_s: float,
                 error: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.summary = summary
        self.active_s = active_s
        self.error = error


class StepSelected(Message):
    """The user picked a step in the conversation (click or cursor): show it in the draft panel.

    `verified` None means no step is picked: the panel follows the live step.
    """

    def __init__(self, drafted, verified) -> None:
        super().__init__()
        self.drafted = drafted
        self.verified = verified
