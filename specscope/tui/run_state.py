"""The explorer's runs as the UI thread sees them: which run is current (a stopped one may still
post its last events), what kind it is, and the steps that have come back but are not drawn yet.

Mixed into SpecScopeApp (which provides gate, session and the panels), as actions.py is.
"""
from __future__ import annotations

from specscope.core.events import Drafted, Event, Summary, Verified


class RunState:
    """The run fields of SpecScopeApp and the bookkeeping on them."""

    def init_run_state(self) -> None:
        self.run_id = 0
        self.running: str | None = None  # "answer" or "baseline" while a worker generates
        self.answer = None  # the AnswerView being generated
        self.last_prompt_ids: list[int] | None = None
        self.last_summary: Summary | None = None
        self.after_run = None  # what to do once a stopped run has ended (regenerate, clear)
        self.step_next = False  # n pressed while idle: the next answer waits for n (teaching mode)
        self._drafted: Drafted | None = None  # waits for its Verified (maybe in the next batch)
        self._pending: list[tuple[Drafted | None, Verified]] = []  # folded, not yet drawn
        self._stopping = False

    def new_run(self, kind: str) -> int:
        """A run of `kind` starts: it is the current one; what the last one left is dropped."""
        self.run_id += 1
        self.running = kind
        self._drafted = None
        self._pending = []
        self._stopping = False
        return self.run_id

    def run_label(self) -> str:
        """What the app is doing, for the controls panel."""
        return ("measuring baseline" if self.running == "baseline"
                else ("paused" if self.gate.paused else "generating") if self.running
                else "idle: the next answer waits for n" if self.step_next else "idle")

    def fold(self, events: tuple[Event, ...], stats) -> None:
        """Count a batch of the answer's events into the stats panel's numbers and pair each
        Verified with its Drafted for drawing (cheap: nothing is drawn here)."""
        for event in events:
            stats.stats.add(event)
            if isinstance(event, Drafted):
                self._drafted = event
                stats.draft_len = event.draft_len
                if event.method != stats.method:  # method changed mid-run
                    stats.method = event.method
                    decoder = self.session.decoder
                    stats.stats.param_ratio = decoder.param_ratio(decoder.drafter(event.method))
            elif isinstance(event, Verified):
                self._pending.append((self._drafted, event))

    def take_steps(self) -> list[tuple[Drafted | None, Verified]]:
        """The folded steps not drawn yet, now to be drawn."""
        steps, self._pending = self._pending, []
        return steps
