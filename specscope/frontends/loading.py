"""Load a session behind a rich progress display (conversion of the embedded pair, loading)."""
from __future__ import annotations

import os
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress

from specscope.frontends.preflight import check_options
from specscope.frontends.progress import make_progress
from specscope.profiles import Profile, load_profile
from specscope.session import Session, load_session

__all__ = ["check_options", "loading_progress", "open_session", "quiet_libraries", "resolve_auto"]


def quiet_libraries() -> None:
    """transformers' own warnings and tqdm bars would interleave with ours."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


class ProgressReporter:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: float, total: float | None) -> None:
        if stage not in self.tasks:
            for task in self.tasks.values():  # finish earlier stages
                t = self.progress.tasks[task]
                self.progress.update(task, total=t.total or 1, completed=t.total or 1)
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)

    def finish(self) -> None:
        for task in self.tasks.values():
            t = self.progress.tasks[task]
            self.progress.update(task, total=t.total or 1, completed=t.total or 1)


@contextmanager
def loading_progress(console: Console, lines: bool = False):
    """Stages of loading (assembling and converting the embedded pair, loading each model).
    `lines`: without a terminal, print a line per stage now and then (long commands)."""
    with make_progress(console, lines=lines, transient=True) as progress:
        report = ProgressReporter(progress)
        yield report
        report.finish()


def open_session(profile: Profile | str | None, method: str | None = None, dtype: str | None = None,
                 device: str | None = None, trimmed=None, vocab_top_k: int | None = None,
                 console: Console | None = None, max_new_tokens: int | None = None,
                 lines: bool = False) -> Session:
    quiet_libraries()
    if not isinstance(profile, Profile):
        profile = load_profile(profile)
    check_options(profile, method, dtype, device, vocab_top_k, trimmed, max_new_tokens)
    console = console or Console(stderr=True)
    with loading_progress(console, lines) as report:
        return load_session(profile, dtype, device, str(trimmed) if trimmed else None, report)


def resolve_auto(profile: Profile, dtype: str | None = None, method: str | None = None,
                 device: str | None = None, console: Console | None = None, lines: bool = True,
                 say: bool = True):
    """auto.resolve behind progress (the first run on a machine measures it), then one line on
    `console` saying what was chosen and why. Returns (profile, choice or None)."""
    from specscope.auto import choice_line, resolve

    from specscope.auto import is_auto

    if not is_auto(profile):
        return resolve(profile, dtype, method, device)
    check_options(profile, method, dtype, device)  # bad options fail before any measuring
    console = console or Console(stderr=True)
    quiet_libraries()
    with loading_progress(console, lines) as report:
        profile, choice = resolve(profile, dtype, method, device, report)
    if say and choice is not None:
        console.print(choice_line(choice), style="dim", highlight=False, soft_wrap=True)
    return profile, choice
