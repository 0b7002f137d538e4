"""One assistant answer as a coloured token stream, built step by step from engine events.

Colours come from `specscope generate` (the same `render_step`), so the CLI and the TUI agree:
accepted draft tokens, rejected draft tokens (struck through; hidden on request) and the
target's own token (the correction after a rejection, or the bonus after a full accept).

The answer's rich Text grows by appending each step (never rebuilt per token); each step's span
carries `{"step": i}` in its style meta, so a click finds its step without any geometry.
"""
from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from specscope.core.events import Drafted, Verified
from specscope.frontends.generate import render_step

SELECTED = Style(reverse=True)
PAUSED = Text("[paused · space resumes · n: one step]", "bold yellow")

Step = tuple[Drafted | None, Verified]


class AnswerView(Widget):
    DEFAULT_CSS = """
    AnswerView { height: auto; }
    """

    class StepClicked(Message):
        def __init__(self, answer: AnswerView, step: int) -> None:
            super().__init__()
            self.answer = answer
            self.step = step

    def __init__(self, hide_rejected: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.steps: list[Step] = []
        self.hide_rejected = hide_rejected
        self.selected: int | None = None
        self.note = Text()  # e.g. "[stopped]", shown after the answer
        self.paused = False  # the run is paused: say so after the text, with the keys that go on
        self._text = Text()
        self._ranges: list[tuple[int, int]] = []  # each step's span in _text

    @property
    def text(self) -> str:
        """The answer as plain text (what the model said; rejected drafts excluded)."""
        return "".join(piece for _, verified in self.steps for piece in verified.pieces)

    @property
    def content(self) -> Text:
        """The coloured answer as displayed (without selection highlight or note)."""
        return self._text

    def add_steps(self, steps: list[Step]) -> None:
        for drafted, verified in steps:
            self._append(drafted, verified)
        self.refresh(layout=True)

    def _append(self, drafted: Drafted | None, verified: Verified) -> None:
        i = len(self.steps)
        self.steps.append((drafted, verified))
        start = len(self._text)
        self._text.append_text(render_step(drafted, verified, self.hide_rejected))
        self._text.stylize(Style(meta={"step": i}), start, len(self._text))
        self._ranges.append((start, len(self._text)))

    def set_hide_rejected(self, hide: bool) -> None:
        if hide == self.hide_rejected:
            return
        steps, self.steps = self.steps, []
        self.hide_rejected = hide
        self._text, self._ranges = Text(), []
        for drafted, verified in steps:
            self._append(drafted, verified)
        self.refresh(layout=True)

    def select(self, step: int | None) -> None:
        self.selected = step
        self.refresh()

    def set_note(self, note: str, style: str = "dim italic") -> None:
        self.note = Text(note, style)
        self.refresh(layout=True)

    def set_paused(self, paused: bool) -> None:
        if paused != self.paused:
            self.paused = paused
            self.refresh(layout=True)

    def render(self) -> Text:
        tail = [t for t in (self.note, PAUSED if self.paused else None) if t]
        if not self.steps and not tail:
            return Text("…", "dim")
        if self.selected is None and not tail:
            return self._text
        text = self._text.copy()
        if self.selected is not None and self.selected < len(self._ranges):
            text.stylize(SELECTED, *self._ranges[self.selected])
        for piece in tail:
            text.append(" " if text else "").append_text(piece)
        return text

    def on_click(self, event: events.Click) -> None:
        step = event.style.meta.get("step")
        if step is not None:
            event.stop()
            self.post_message(self.StepClicked(self, step))
