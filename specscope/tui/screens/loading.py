"""The loading screen: models load (and the embedded pair converts) in a worker thread.

The core reports progress as (stage, done, total) calls; here each call becomes a LoadProgress
message (post_message is thread-safe; messages of the same stage merge), and each stage gets a
progress bar, so the screen moves instead of freezing. A failure is shown, not raised: r retries.
"""
from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label, ProgressBar, Static

from specscope.tui.messages import LoadFailed, LoadProgress, SessionReady

Loader = Callable[[Callable[[str, float, float | None], None]], object]


class LoadingScreen(Screen):
    """Dismissed with the loaded session."""

    # Keys typed while loading (a prompt, say) must not quit: q acts only once loading failed.
    BINDINGS = [Binding("r", "retry", "retry"), Binding("q", "quit_failed", "quit"),
                Binding("ctrl+q", "app.quit", "quit", show=False)]

    def __init__(self, loader: Loader, title: str) -> None:
        super().__init__()
        self.loader = loader
        self.title_text = title
        self.bars: dict[str, ProgressBar] = {}
        self.failed = False

    def compose(self) -> ComposeResult:
        with Vertical(id="loading"):
            yield Static(Text(self.title_text, "bold"))
            yield Vertical(id="stages")
            yield Static("", id="load-error")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self) -> None:
        def progress(stage: str, done: float, total: float | None) -> None:
            self.post_message(LoadProgress(stage, done, total))

        try:
            session = self.loader(progress)
        except Exception as e:  # any failure (missing model, bad weights) is shown, not raised
            self.post_message(LoadFailed(str(e) or type(e).__name__))
        else:
            self.post_message(SessionReady(session))

    def on_load_progress(self, message: LoadProgress) -> None:
        bar = self.bars.get(message.stage)
        if bar is None:
            for done in self.bars.values():  # earlier stages are finished
                done.update(total=done.total or 1, progress=done.total or 1)
            bar = ProgressBar(show_eta=False)
            self.bars[message.stage] = bar
            self.query_one("#stages").mount(Label(message.stage), bar)
        bar.update(total=message.total, progress=message.done)

    def on_session_ready(self, message: SessionReady) -> None:
        self.dismiss(message.session)

    def on_load_failed(self, message: LoadFailed) -> None:
        self.failed = True
        self.query_one("#load-error", Static).update(
            Text(f"error: {message.error}\n\nr: try again    q: quit", "bold red"))

    def action_quit_failed(self) -> None:
        if self.failed:
            self.app.exit()

    def action_retry(self) -> None:
        if self.failed:
            self.failed = False
            self.query_one("#load-error", Static).update("")
            self.load()
