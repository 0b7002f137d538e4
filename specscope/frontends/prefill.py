"""A long prompt's prefill as progress: a rich bar on a terminal, a line now and then without one.

`generate` hands every event to `PrefillDisplay.show`; `Prefilling` events drive a bar per model
(the target's prefill, then the drafter's), any other event ends the display, so the bar never
shares the screen with the answer. `bench` passes its own progress instead: the bars join its
runs' bar and go when read. Progress counts the tokens read in this prefill (a conversation's
cached tokens are not), so the time left is right.
"""
from __future__ import annotations

from rich.console import Console

from specscope.core.events import Prefilling
from specscope.frontends.progress import LineProgress, make_progress

LABELS = {"target": "reading the prompt (target)", "draft": "reading the prompt (drafter)"}


class PrefillDisplay:
    def __init__(self, console: Console | None = None, progress: LineProgress | None = None) -> None:
        self.console = console
        self.shared = progress is not None  # someone else's progress: never started or stopped here
        self.progress = progress
        self.tasks: dict[str, tuple[int, int]] = {}  # model -> (task, tokens cached at its start)

    def show(self, event) -> None:
        if not isinstance(event, Prefilling):
            self.close()
            return
        if self.progress is None:
            self.progress = make_progress(self.console, lines=True, transient=True)
            self.progress.start()
        if event.model not in self.tasks:
            label = LABELS.get(event.model, event.model)  # the bar's amount says how many tokens
            task = self.progress.add_task(label, total=event.total - event.done)
            self.tasks[event.model] = (task, event.done)
        task, start = self.tasks[event.model]
        self.progress.update(task, completed=event.done - start)
        if event.done >= event.total:  # read (without a terminal its last line is printed)
            self.progress.remove_task(task)
            del self.tasks[event.model]

    def close(self) -> None:
        if self.shared:
            return
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.tasks = {}
