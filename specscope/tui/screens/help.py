"""The help screen: how to read the explorer, and every key (from the app's one list of bindings)."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from specscope.frontends.generate import legend
from specscope.tui.keys import BINDINGS

EXTRA = [  # keys that belong to widgets rather than to the app
    ("enter", "Send the prompt (in the prompt box)"),
    ("tab", "Move focus between the prompt box and the panes"),
    ("click", "Click a token: the draft panel shows the step that produced it"),
    ("up/down, pgup/pgdn", "Scroll the focused pane"),
]

READING = " ".join("""
Each step the drafter proposes tokens and the target checks them all in one pass: it keeps the
longest acceptable prefix and adds one token of its own (a correction after a rejection, or a
bonus after a full accept). The draft panel shows one step: every proposed token with the
drafter's probability q and the target's p. Stats: tau = tokens per target pass; MBSU = tau /
(k r + 1) with r the drafter/target weight ratio; speedup is measured once you press b.
""".split())


def key_names(binding: Binding) -> str:
    keys = binding.key.split(",")
    names = {"question_mark": "?", "slash": "/", "plus": "+", "equals_sign": "=", "minus": "-",
             "left_square_bracket": "[", "right_square_bracket": "]"}
    return " ".join(names.get(k, k) for k in keys)


def keys_table() -> Table:
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for binding in BINDINGS:
        table.add_row(key_names(binding), binding.tooltip or binding.description)
    for key, text in EXTRA:
        table.add_row(key, text)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,f1,q", "dismiss", "close help")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("specscope chat: keys", "bold"))
            yield Static(legend())
            yield Static(Text(READING, "dim"))
            yield Static(keys_table())

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "help (esc closes)"
