"""The keys that change a setting or the view, never a run (keys.py lists them all).

Settings go through the controls panel's reactive attributes, which clamp them and hand them to
the engine's Controls for its next step.
"""
from __future__ import annotations

from textual.widgets import Input

from specscope.tui.screens.help import HelpScreen
from specscope.tui.widgets.controls_panel import NO_VOCAB
from specscope.tui.widgets.legend import Legend


class SettingActions:
    """Mixed into SpecScopeApp (which provides conversation, controls_panel, notify, ...)."""

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    def action_leave_prompt(self) -> None:
        self.conversation.focus()

    def action_draft_len(self, delta: int) -> None:
        self.controls_panel.draft_len += delta

    def action_adaptive(self) -> None:
        self.controls_panel.cycle_adaptive()

    def action_temperature(self, delta: float) -> None:
        self.controls_panel.temperature += delta

    def action_top_p(self, delta: float) -> None:
        self.controls_panel.top_p += delta

    def action_greedy(self) -> None:
        self.controls_panel.toggle_greedy()

    def action_method(self) -> None:
        self.controls_panel.next_method()

    def action_vocab(self, direction: int) -> None:
        if not self.controls_panel.scale_vocab(direction):
            self.notify(f"Drafter vocabulary: {NO_VOCAB}", severity="warning")

    def action_overlap(self) -> None:
        if not self.controls_panel.toggle_overlap():
            self.notify("Drafting ahead needs the drafter's own worker: start chat with --overlap "
                        "or --draft-threads N", severity="warning")

    def action_hide_rejected(self) -> None:
        hide = not self.conversation.hide_rejected
        self.conversation.set_hide_rejected(hide)
        self.query_one(Legend).set_hide_rejected(hide)

    def action_select_step(self, delta: int) -> None:
        self.conversation.move(delta)

    def action_live_step(self) -> None:
        self.conversation.select(None)
