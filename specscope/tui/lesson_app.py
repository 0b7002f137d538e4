"""`specscope lesson` as a Textual app: one chapter on screen, paced by the keys.

Each chapter runs live in a thread worker (one engine run at a time: ENGINE_LOCK) and posts its
progress; the screen shows "running …" with the tokens so far, then the chapter's page: what the
run showed and a caption built from its numbers. Pages are kept, so going back is instant; r
reruns the chapter. Moving on or quitting mid-run cancels the run at its next event. A failing
chapter shows its error and leaves the lesson usable.
"""
from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static
from textual.worker import get_current_worker

from specscope.core.errors import SpecScopeError
from specscope.lesson.chapters import CHAPTERS, run_chapter
from specscope.lesson.runs import Cancelled, Lesson, Page
from specscope.tui.generation import ENGINE_LOCK
from specscope.tui.screens.loading import Loaded, Loader, LoadingScreen

KEYS = " →/space next  ←/b back  r restart chapter  ↑↓ scroll  q quit"


class ChapterProgress(Message):
    def __init__(self, number: int, label: str, tokens: int) -> None:
        super().__init__()
        self.number, self.label, self.tokens = number, label, tokens

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ChapterProgress)


class ChapterDone(Message):
    def __init__(self, number: int, page: Page | None, error: str | None = None) -> None:
        super().__init__()
        self.number, self.page, self.error = number, page, error


class LessonApp(App[None]):
    TITLE = "specscope lesson"
    CSS = """
    #lesson-title { height: 1; background: $boost; text-style: bold; padding: 0 1; }
    #lesson-body { height: 1fr; border: round $primary 40%; padding: 0 1; }
    #lesson-caption { height: auto; max-height: 12; border: round $secondary; padding: 0 1; }
    #lesson-keys { height: 1; background: $panel; color: $text-muted; }
    """
    BINDINGS = [Binding("right,space,n", "next", "next"), Binding("left,b,p", "back", "back"),
                Binding("r", "restart", "restart"), Binding("q,escape,ctrl+q", "quit", "quit")]

    def __init__(self, profile, max_new_tokens: int = 32, loader: Loader | None = None,
                 session=None, start: int = 1) -> None:
        super().__init__()
        self.profile = profile
        self.max_new_tokens = max_new_tokens
        self.loader = loader
        self.session = session
        self.current = start
        self.pages: dict[int, Page] = {}
        self.errors: dict[int, str] = {}
        self.running: int | None = None  # the chapter whose run is in flight
        self.sub_title = profile.name

    def compose(self) -> ComposeResult:
        yield Static("", id="lesson-title")
        with VerticalScroll(id="lesson-body"):
            yield Static("", id="lesson-content")
        yield Static("", id="lesson-caption")
        yield Static(Text(KEYS, no_wrap=True, overflow="ellipsis"), id="lesson-keys")

    def on_mount(self) -> None:
        self.query_one("#lesson-body").focus()
        if self.session is not None:
            self.session_ready(self.session)
        else:
            title = f"Loading profile '{self.profile.name}': {self.profile.target}" + (
                f" + {self.profile.drafter}" if self.profile.drafter else "")
            self.push_screen(LoadingScreen(self.loader, title, prompt=False), callback=self.loaded)

    def loaded(self, result: Loaded) -> None:
        self.session_ready(result.session)

    def session_ready(self, session) -> None:
        self.session = session
        self.show(self.current)

    # Showing a chapter.

    def show(self, number: int) -> None:
        self.current = number
        title = CHAPTERS[number - 1][0]
        self.query_one("#lesson-title", Static).update(f"{number}/{len(CHAPTERS)} · {title}")
        if number in self.pages:
            page = self.pages[number]
            self.set_view(Text("\n").join(page.body), "\n".join(page.caption))
        elif number in self.errors:
            self.set_view(Text(f"error: {self.errors[number]}", "bold red"),
                          "This chapter's run failed. r runs it again; → and ← still move on.")
        else:
            self.set_view(Text("running on the models…", "dim"), "")
            if self.session is not None:
                self.start(number)

    def set_view(self, body: Text, caption: str) -> None:
        self.query_one("#lesson-content", Static).update(body)
        self.query_one("#lesson-caption", Static).update(caption)
        self.query_one("#lesson-caption").display = bool(caption)
        self.query_one("#lesson-body", VerticalScroll).scroll_home(animate=False)

    def start(self, number: int) -> None:
        self.running = number
        self.run_chapter(number)

    @work(thread=True, exclusive=True, group="lesson", exit_on_error=False)
    def run_chapter(self, number: int) -> None:
        worker = get_current_worker()

        def progress(label: str, tokens: int) -> None:
            self.post_message(ChapterProgress(number, label, tokens))

        lesson = Lesson(self.session, self.max_new_tokens, lambda: worker.is_cancelled, progress)
        with ENGINE_LOCK:
            if worker.is_cancelled:
                return
            try:
                page = run_chapter(lesson, number)
            except Cancelled:
                return
            except Exception as e:  # shown on the page, never raised: the lesson goes on
                message = str(e) if isinstance(e, SpecScopeError) else f"{type(e).__name__}: {e}"
                self.post_message(ChapterDone(number, None, message))
            else:
                self.post_message(ChapterDone(number, page))

    def on_chapter_progress(self, message: ChapterProgress) -> None:
        if message.number == self.current and message.number not in self.pages:
            self.query_one("#lesson-content", Static).update(Text(
                f"running on the models… {message.label}: {message.tokens} tokens", "dim"))

    def on_chapter_done(self, message: ChapterDone) -> None:
        if self.running == message.number:
            self.running = None
        if message.page is not None:
            self.pages[message.number] = message.page
            self.errors.pop(message.number, None)
        else:
            self.errors[message.number] = message.error
        if message.number == self.current:
            self.show(self.current)

    # Keys.

    def action_next(self) -> None:
        if self.current < len(CHAPTERS):
            self.move(self.current + 1)

    def action_back(self) -> None:
        if self.current > 1:
            self.move(self.current - 1)

    def move(self, number: int) -> None:
        if self.running is not None and self.running != number:
            self.workers.cancel_group(self, "lesson")  # the run stops at its next event
            self.running = None
        self.show(number)

    def action_restart(self) -> None:
        if self.session is None:
            return
        self.pages.pop(self.current, None)
        self.errors.pop(self.current, None)
        self.workers.cancel_group(self, "lesson")
        self.running = None
        self.show(self.current)

    async def action_quit(self) -> None:
        self.workers.cancel_group(self, "lesson")
        self.exit()


def run_lesson(profile, dtype=None, device=None, trimmed=None, max_new_tokens: int = 32,
               start: int = 1) -> None:
    from specscope.frontends.loading import quiet_libraries
    from specscope.session import load_session

    def loader(progress):
        quiet_libraries()
        return load_session(profile, dtype, device, str(trimmed) if trimmed else None, progress)

    LessonApp(profile, max_new_tokens, loader, start=start).run()
