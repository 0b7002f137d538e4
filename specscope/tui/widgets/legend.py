"""The colour legend above the conversation (the same styles as `specscope generate`)."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from specscope.frontends.generate import STYLES


class Legend(Static):
    def on_mount(self) -> None:
        self.set_hide_rejected(False)

    def set_hide_rejected(self, hide: bool) -> None:
        text = Text()
        text.append("accepted draft", STYLES["accepted"]).append(" · ")
        text.append("rejected draft", STYLES["rejected"]).append(" · ")
        text.append("target's token", STYLES["target"]).append(" · ")
        text.append("plain decoding", STYLES["plain"] or "default")
        if hide:
            text.append("  (hidden: h)", "dim")
        self.update(text)
