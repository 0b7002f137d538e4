"""The conversation pane: user turns, coloured answers, errors; and the step cursor over them.

Only the answer being generated re-renders while tokens stream; earlier turns keep their render.
The step cursor (click a token, or [ and ]) picks one draft-verify step of any answer for the
draft panel; with no selection the panel follows the live step.
"""
from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from specscope.frontends.generate import printable
from specscope.tui.messages import StepSelected
from specscope.tui.widgets.answer import AnswerView

Position = tuple[int, int]  # (answer index, step index)


class Conversation(VerticalScroll, can_focus=True):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.answers: list[AnswerView] = []
        self.hide_rejected = False
        self.selection: Position | None = None

    def on_mount(self) -> None:
        self.anchor()

    def add_user(self, text: str) -> None:
        self.mount(Static(Text(printable(text)), classes="user"))
        self.anchor()

    def add_answer(self) -> AnswerView:
        view = AnswerView(self.hide_rejected, classes="answer")
        self.answers.append(view)
        self.mount(view)
        self.anchor()
        return view

    def add_error(self, message: str) -> None:
        self.mount(Static(Text(f"error: {printable(message)}"), classes="error"))
        self.anchor()

    async def remove_last_answer(self) -> None:
        if self.answers:
            view = self.answers.pop()
            if self.selection and self.selection[0] >= len(self.answers):
                self.selection = None
            await view.remove()

    async def clear(self) -> None:
        self.answers = []
        self.selection = None
        await self.remove_children()

    def set_hide_rejected(self, hide: bool) -> None:
        self.hide_rejected = hide
        for view in self.answers:
            view.set_hide_rejected(hide)

    # The step cursor.

    def _positions(self) -> list[Position]:
        return [(a, s) for a, view in enumerate(self.answers) for s in range(len(view.steps))]

    def select(self, position: Position | None) -> None:
        """Highlight a step (None: follow the live step) and tell the app which step it is."""
        if self.selection is not None and self.selection[0] < len(self.answers):
            self.answers[self.selection[0]].select(None)
        self.selection = position
        if position is None:
            self.post_message(StepSelected(None, None))
            return
        view = self.answers[position[0]]
        view.select(position[1])
        view.scroll_visible(animate=False)
        self.post_message(StepSelected(*view.steps[position[1]]))

    def move(self, delta: int) -> None:
        """Move the cursor by delta steps; moving past the latest step returns to live."""
        positions = self._positions()
        if not positions:
            return
        here = positions.index(self.selection) if self.selection in positions else len(positions)
        there = here + delta
        if there >= len(positions):
            self.select(None)
        else:
            self.select(positions[max(0, there)])

    def on_answer_view_step_clicked(self, message: AnswerView.StepClicked) -> None:
        message.stop()
        self.select((self.answers.index(message.answer), message.step))
