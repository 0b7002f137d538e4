"""The training screen: `specscope mtp train` for the chat's profile, run from the TUI (M), and
the held-apart acceptance climbing as the head learns the target (FastMTP's teaching moment).

The run is a child process (frontends/train_events.py); this screen only shows it. Esc closes
the screen and training goes on (M shows it again); s stops it like Ctrl-C (what it did is kept;
M again goes on where it stopped).
"""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from specscope.frontends.train_events import TrainingRun, TrainingView

BARS = " ▁▂▃▄▅▆▇█"


def bar(value: float, width: int = 20) -> str:
    """A horizontal bar of `value` in [0, 1], in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, value)) * width * 8)
    return "█" * (eighths // 8) + (BARS[eighths % 8] if eighths % 8 else "")


def climb_table(view: TrainingView) -> Table:
    """Each evaluation: trained tokens, acceptance at steps 1..depth, step 1 as a bar."""
    table = Table(box=None, pad_edge=False)
    table.add_column("tokens trained", justify="right")
    table.add_column("acceptance at draft steps 1..3")
    table.add_column("step 1")
    for tokens, acc in view.climb:
        table.add_row(f"{tokens:,}", " ".join(f"{a:.2f}" for a in acc), Text(bar(acc[0]), "green"))
    return table


def render(run: TrainingRun) -> list:
    view = run.view
    head = Text()
    head.append(f"{view.stage}", "bold")
    if view.total and not view.result and view.returncode is None:
        head.append(f"  {view.done:,.0f}/{view.total:,.0f}")
    if view.returncode is not None and view.error:
        head.append(f"\nfailed: {view.error}", "bold red")
    parts: list = [head]
    if view.plan:
        parts.append(Text(view.plan, "cyan"))
    parts.append(Text("held-apart acceptance (the selection prompts, evaluated as it trains):", "bold"))
    parts.append(climb_table(view) if view.climb else Text("  (not evaluated yet)", "dim"))
    if view.result and view.result.get("estimate_acceptance"):
        est = " ".join(f"{a:.2f}" for a in view.result["estimate_acceptance"])
        parts.append(Text(f"held-out estimate (prompts used for neither training nor selection): {est}",
                          "bold green"))
    notes = [n for n in view.notes if n != view.plan][-6:]
    if notes:
        parts.append(Text("\n".join(notes), "dim"))
    parts.append(Text(f"log: {run.log}", "dim"))
    return parts


class TrainingScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,M", "dismiss", "close (training goes on)"),
                Binding("s", "stop_training", "stop training")]

    def __init__(self, run: TrainingRun) -> None:
        super().__init__()
        self.run = run

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="training"):
            yield Static(id="training-body")

    def on_mount(self) -> None:
        box = self.query_one("#training")
        box.border_title = "training the FastMTP head"
        box.border_subtitle = "esc: close (training goes on) · s: stop (M again goes on)"
        self.refresh_view()

    def refresh_view(self) -> None:
        from rich.console import Group

        self.query_one("#training-body", Static).update(Group(*render(self.run)))

    def action_stop_training(self) -> None:
        if self.run.running:
            self.run.stop()
            self.notify("Stopping training: what it did is kept; M goes on where it stopped.")
