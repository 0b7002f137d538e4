"""The colour legend above the conversation (the same colours as `specscope generate`)."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from specscope.frontends.generate import STYLES, legend


class Legend(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hide_rejected = False

    def on_mount(self) -> None:
        self.set_hide_rejected(False)

    def set_hide_rejected(self, hide: bool) -> None:
        self.hide_rejected = hide
        text = legend()
        text.append("  plain (ar)", STYLES["plain"] or "default")
        text.append("  · h: " + ("show" if hide else "hide") + " rejected", "dim")
        self.update(text)
