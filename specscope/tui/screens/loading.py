"""The loading screen: models load (and the embedded pair converts) in a worker thread.

The core reports progress as (stage, done, total) calls; here each call becomes a LoadProgress
message (post_message is thread-safe; messages of the same stage merge), and each stage gets a
label (what, for how long, and how long is left once its total is known) and a progress bar, so
the screen moves instead of freezing. A failure is shown, not raised: r retries.

Loading takes seconds to minutes, and people type their prompt meanwhile. The screen is modal, so
the app's control keys do not act while it is up, and it has a prompt box of its own, focused:
what is typed there moves to the app's prompt box once the models are ready, and is sent then if
Enter was pressed.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, ProgressBar, Static

from specscope.tui.messages import LoadFailed, LoadProgress, SessionReady

Loader = Callable[[Callable[[str, float, float | None], None]], object]


@dataclass
class Loaded:
    """What the screen is dismissed with: the session, and the prompt typed while it loaded."""

    session: object
    prompt: str = ""
    send: bool = False  # Enter was pressed: send the prompt now


@dataclass
class Stage:
    label: Label
    bar: ProgressBar
    start: float
    end: float | None = None


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


class LoadingScreen(ModalScreen[Loaded]):
    """Dismissed with a Loaded. Modal: the app's bindings (pause, settings...) wait for it."""

    AUTO_FOCUS = "#early-prompt"
    # r and q act only once loading failed (the prompt box is then disabled, so they reach here).
    # A line typed before the app started (the terminal still in line mode) ends in a newline,
    # which arrives as ctrl+j: it sends the prompt as Enter does.
    BINDINGS = [Binding("r", "retry", "retry"), Binding("q", "quit_failed", "quit"),
                Binding("ctrl+q", "app.quit", "quit", show=False),
                Binding("ctrl+j", "send_early", show=False)]

    def __init__(self, loader: Loader, title: str, prompt: bool = True) -> None:
        super().__init__()
        self.loader = loader
        self.title_text = title
        self.has_prompt = prompt  # the lesson has no prompt to type
        self.stages: dict[str, Stage] = {}
        self.failed = False
        self.send = False
        self.start = time.monotonic()

    def compose(self) -> ComposeResult:
        with Vertical(id="loading"):
            yield Static(id="load-title")
            yield Vertical(id="stages")
            yield Static("", id="load-error")
            if self.has_prompt:
                yield Input(placeholder="Type your prompt while the models load "
                            "(Enter: sent once they are ready)", id="early-prompt")
                yield Static("", id="early-note")
        yield Footer()

    def on_mount(self) -> None:
        self.show_times()
        self.set_interval(1.0, self.show_times)
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
        stage = self.stages.get(message.stage)
        if stage is None:
            self.finish_stages()  # earlier stages are finished
            stage = Stage(Label(), ProgressBar(show_eta=False), time.monotonic())
            self.stages[message.stage] = stage
            self.query_one("#stages").mount(stage.label, stage.bar)
        stage.bar.update(total=message.total, progress=message.done)
        self.show_times()

    def finish_stages(self) -> None:
        now = time.monotonic()
        for stage in self.stages.values():
            stage.bar.update(total=stage.bar.total or 1, progress=stage.bar.total or 1)
            stage.end = stage.end or now

    def show_times(self) -> None:
        """The title with the time so far; each stage with its time and, with a total, the rest."""
        now = time.monotonic()
        if not self.failed:
            title = Text(self.title_text, "bold").append(f"  ({duration(now - self.start)})", "dim")
            self.query_one("#load-title", Static).update(title)
        for name, stage in self.stages.items():
            text = Text(name)
            if stage.end is not None:
                text.append(f"  took {duration(stage.end - stage.start)}", "dim")
            else:
                spent = now - stage.start
                text.append(f"  {duration(spent)}", "dim")
                total, done = stage.bar.total, stage.bar.progress
                if total and 0 < done < total and spent >= 2:
                    text.append(f", about {duration(spent * (total - done) / done)} left", "dim")
            stage.label.update(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # the app's own prompt handler sends; this one waits for the models
        self.send = bool(event.value.strip())
        self.query_one("#early-note", Static).update(
            Text("Sent as soon as the models are loaded", "dim")
            if self.send else "")

    @property
    def early_prompt(self) -> Input | None:
        return self.query_one_optional("#early-prompt", Input)

    async def action_send_early(self) -> None:
        if self.early_prompt is not None:
            await self.early_prompt.action_submit()

    def on_session_ready(self, message: SessionReady) -> None:
        self.finish_stages()
        prompt = self.early_prompt.value if self.early_prompt is not None else ""
        self.dismiss(Loaded(message.session, prompt, self.send and bool(prompt.strip())))

    def on_load_failed(self, message: LoadFailed) -> None:
        self.failed = True
        if self.early_prompt is not None:
            self.early_prompt.disabled = True  # r and q now reach the bindings
        self.query_one("#load-error", Static).update(
            Text(f"error: {message.error}\n\nr: try again    q: quit", "bold red"))

    def action_quit_failed(self) -> None:
        if self.failed:
            self.app.exit()

    def action_retry(self) -> None:
        if self.failed:
            self.failed = False
            self.start = time.monotonic()
            self.query_one("#load-error", Static).update("")
            self.query_one("#stages").remove_children()
            self.stages = {}
            if self.early_prompt is not None:
                self.early_prompt.disabled = False
                self.early_prompt.focus()
            self.load()
