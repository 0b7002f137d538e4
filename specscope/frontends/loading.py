"""Load a session behind a rich progress display (conversion of the embedded pair, loading)."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from specscope.core.controls import Controls
from specscope.core.errors import SpecScopeError
from specscope.core.models import resolve_device, resolve_dtype
from specscope.profiles import Profile, load_profile
from specscope.session import METHODS, NEEDS_DRAFTER, Session, load_session, mtp_head, no_mtp_head


def quiet_libraries() -> None:
    """transformers' own warnings and tqdm bars would interleave with ours."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


def check_options(profile: Profile, method: str | None, dtype: str | None, device: str | None,
                  vocab_top_k: int | None = None, trimmed=None) -> None:
    """Fail fast, before minutes of model loading, on options that cannot work."""
    resolve_dtype(dtype or profile.dtype)
    resolve_device(device or profile.device)
    if method is not None:
        if method not in METHODS:
            raise SpecScopeError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")
        if method in NEEDS_DRAFTER and not profile.drafter:
            raise SpecScopeError(f"method '{method}' needs a drafter; profile '{profile.name}' has none")
        if method == "mtp" and mtp_head(profile) is None:
            raise no_mtp_head(profile)
    if vocab_top_k is not None and method != "mtp" and not (trimmed or profile.trimmed):
        raise SpecScopeError("--vocab-top-k needs a frequency ranking: pass --trimmed PATH "
                             "(made by `specscope trim`)")


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


@contextmanager
def loading_progress(console: Console):
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               DownloadColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        yield ProgressReporter(progress)


def open_session(profile: Profile | str | None, method: str | None = None, dtype: str | None = None,
                 device: str | None = None, trimmed=None, vocab_top_k: int | None = None,
                 console: Console | None = None) -> Session:
    quiet_libraries()
    if not isinstance(profile, Profile):
        profile = load_profile(profile)
    check_options(profile, method, dtype, device, vocab_top_k, trimmed)
    console = console or Console(stderr=True)
    with loading_progress(console) as report:
        return load_session(profile, dtype, device, str(trimmed) if trimmed else None, report)
