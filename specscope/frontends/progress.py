"""Progress for long commands: rich bars on a terminal, a plain line now and then otherwise.

- Units: a stage counts bytes only when its total is a byte count (see `is_bytes`); other stages
  (prompts, skip sets, parts) show done/total, and a stage without a total shows only a spinner.
- Time left: the average rate since the task began, so slow steps (a calibration prompt can take
  a minute) still get an estimate (rich's own column needs two updates within 30 s).
- Width: the description is cut with an ellipsis and the bar is short, so a line never wraps at
  80 columns.
- Without a terminal (a log file, a job runner) rich draws nothing until the end; `make_progress`
  with `lines=True` then prints one line per task when it starts, every `interval` seconds while
  it runs, and when it ends, to the same console (stderr).
"""
from __future__ import annotations

import os
import time

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, ProgressColumn,
                           SpinnerColumn, Task, TextColumn, TimeElapsedColumn)
from rich.table import Column
from rich.text import Text

BYTES = 1 << 20  # totals this large are byte counts: nothing else we count reaches a million
INTERVAL = float(os.environ.get("SPECSCOPE_PROGRESS_INTERVAL", "30"))


def is_bytes(task: Task) -> bool:
    return task.fields.get("unit") == "bytes" or (task.total is not None and task.total >= BYTES)


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def eta_seconds(task: Task) -> float | None:
    if task.total is None or not task.completed or task.elapsed is None:
        return None
    rate = task.completed / task.elapsed
    return max(0.0, (task.total - task.completed) / rate) if rate > 0 else None


class AmountColumn(ProgressColumn):
    """Bytes (1.2/4.4 GB) for byte counts, done/total for everything else, nothing without a total."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.bytes = DownloadColumn()
        self.count = MofNCompleteColumn()

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return (self.bytes if is_bytes(task) else self.count).render(task)


class EtaColumn(ProgressColumn):
    """Time left at the average rate so far ('~1:05 left'), blank until there is a rate."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("")
        left = eta_seconds(task)
        return Text("" if left is None else f"~{clock(left)} left", style="progress.remaining")


def description(width: int = 34) -> TextColumn:
    return TextColumn("{task.description}", table_column=Column(
        no_wrap=True, overflow="ellipsis", max_width=width, min_width=min(width, 12)))


def standard_columns(width: int = 34) -> list[ProgressColumn]:
    """Spinner, description, a 16-cell bar, amount, elapsed, time left: about 78 columns."""
    return [SpinnerColumn(), description(width), BarColumn(bar_width=16), AmountColumn(),
            TimeElapsedColumn(), EtaColumn()]


def task_line(task: Task) -> str:
    """One plain line for a log: 'calibrating (generate): 3/52, 1,234 tokens, 0:41 elapsed, ~11:02 left'."""
    parts = []
    if task.total is not None:
        if is_bytes(task):
            parts.append(f"{task.completed / 1e9:.2f}/{task.total / 1e9:.2f} GB")
        else:
            parts.append(f"{int(task.completed)}/{int(task.total)}")
    for key, value in task.fields.items():
        if key != "unit" and isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{value:,} {key}")
        elif key != "unit" and isinstance(value, str) and value not in ("", "-"):
            parts.append(f"{key} {value}")  # e.g. a loss shown as text
    parts.append(f"{clock(task.elapsed or 0)} elapsed")
    left = None if task.finished else eta_seconds(task)
    if task.finished:
        parts.append("done")
    elif left is not None:
        parts.append(f"~{clock(left)} left")
    return f"{task.description}: " + ", ".join(parts)


class LineProgress(Progress):
    """A rich Progress that, on a console that is not a terminal, prints `task_line`s instead."""

    def __init__(self, *columns, console: Console, lines: bool = False,
                 interval: float = INTERVAL, **kwargs) -> None:
        self.log_lines = lines and not console.is_terminal
        if self.log_lines:
            kwargs["disable"] = True  # no live display (it would print the bars once, at the end)
        super().__init__(*columns, console=console, **kwargs)
        self.interval = interval
        self._logged: dict[int, float] = {}  # task -> when its last line was printed
        self._ended: set[int] = set()

    def _log(self, task_id) -> None:
        if not self.log_lines:
            return
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None or task_id in self._ended:
            return
        now = time.monotonic()
        last = self._logged.get(task_id)
        if task.finished:
            self._ended.add(task_id)
        elif last is not None and now - last < self.interval:
            return
        self._logged[task_id] = now
        self.console.print(task_line(task), markup=False, highlight=False, soft_wrap=True)

    def add_task(self, *args, **kwargs):
        task_id = super().add_task(*args, **kwargs)
        self._log(task_id)
        return task_id

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)


def make_progress(console: Console, columns: list[ProgressColumn] | None = None, *,
                  lines: bool = False, transient: bool = False,
                  interval: float = INTERVAL) -> LineProgress:
    return LineProgress(*(columns or standard_columns()), console=console, lines=lines,
                        transient=transient, interval=interval)
