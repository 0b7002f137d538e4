"""The footer: the main keys on one line; click one to run it.

Textual's Footer rebuilds itself (dozens of widgets) whenever focus moves, which happens right as
an answer starts; this bar is drawn once and never changes, so it costs nothing mid-run. It
shows the letter keys even while the prompt box has focus (Esc leaves it).
"""
from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from specscope.tui.keys import BINDINGS


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $panel; color: $text-muted; }
    """

    def on_mount(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        for binding in BINDINGS:
            if not binding.show:
                continue
            key = binding.key_display or binding.key.split(",")[0]
            click = Style(meta={"@click": f"app.{binding.action}"})
            text.append(f" {key} ", Style(bold=True, color="cyan") + click)
            text.append(f"{binding.description} ", click)
        self.update(text)
