"""Training's events (specscope/train/events.py) as JSON lines, both ways.

`JsonEvents` is `mtp train --json`'s writer: one line on stdout per event, a `loading` line per
loading stage now and then, a last `done` line with the held-out estimate.

`TrainingRun` is its reader: `specscope mtp train --json` in a child process (its own torch
threads, its own Ctrl-C: a stop is SIGTERM, which keeps what was done, so the same command goes
on), its lines folded into what a front end shows (chat's training screen): the plan, the stage
and its progress, notes, and each evaluation of the held-apart acceptance as training goes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path


def _emit(kind: str, **data) -> None:
    sys.stdout.write(json.dumps({"event": kind, **data}, default=str) + "\n")
    sys.stdout.flush()


class JsonEvents:
    """on_event for train.run: every event as a JSON line on stdout."""

    def __call__(self, event) -> None:
        _emit(type(event).__name__.lower(), **asdict(event))

    @contextmanager
    def loading(self):
        """train.run's `loading()`: a reporter (stage, done, total) that writes a line when the
        stage changes or a second has passed."""
        last = {"stage": None, "t": 0.0}

        def report(stage: str, done: float, total: float | None) -> None:
            now = time.monotonic()
            if stage != last["stage"] or now - last["t"] >= 1.0:
                last.update(stage=stage, t=now)
                _emit("loading", stage=stage, done=done, total=total)

        yield report

    def done(self, report) -> None:
        r = report.result
        _emit("done", interrupted=report.interrupted, path=str(report.path),
              estimate_acceptance=r.get("estimate_acceptance"),
              selection_acceptance=r.get("held_acceptance"), seconds=report.total_s)


@dataclass
class TrainingView:
    """What a front end shows of a training run (folded from its events)."""

    plan: str = ""
    stage: str = "starting"  # what runs now, in words
    done: float = 0.0
    total: float = 0.0
    notes: list[str] = field(default_factory=list)
    # each evaluation of the held-apart (selection) acceptance: (trained tokens, acceptance 1..depth)
    climb: list[tuple[int, list[float]]] = field(default_factory=list)
    result: dict | None = None  # the `done` line
    returncode: int | None = None  # set once the process has ended
    error: str = ""  # the last line of its stderr when it failed
    _evaluations: int = 0

    def fold(self, e: dict) -> None:
        kind = e.get("event")
        if kind == "loading":
            self.stage, self.done, self.total = f"loading: {e['stage']}", e["done"] or 0, e["total"] or 0
        elif kind == "note":
            self.notes.append(e["text"])
            if e["text"].startswith("plan for "):
                self.plan = e["text"]
        elif kind == "started":
            self.stage, self.done, self.total = e["label"], e["done"], e["total"]
            self._acceptance(e.get("fields") or {})
        elif kind == "progress":
            self.done = e["done"]
            self._acceptance(e.get("fields") or {})
        elif kind == "ended":
            self.stage = "between stages"
        elif kind == "done":
            self.result = e
            self.stage = "stopped (the same command goes on)" if e["interrupted"] else "done"

    def _acceptance(self, fields: dict) -> None:
        """A new evaluation's held-apart acceptance joins the climb."""
        if fields.get("evaluations", 0) > self._evaluations and fields.get("acceptance") is not None:
            self._evaluations = fields["evaluations"]
            self.climb.append((int(fields.get("tokens", 0)), list(fields["acceptance"])))


class TrainingRun:
    """`specscope mtp train -p PROFILE --json ARGS` in a child process; `on_change()` is called
    (from a reader thread) after each line and once it has ended. Its stderr goes to `log`."""

    def __init__(self, profile: str, args: list[str], log: Path,
                 on_change: Callable[[], None]) -> None:
        self.command = [sys.executable, "-m", "specscope.cli", "mtp", "train", "-p", profile,
                        "--json", *args]
        self.log = log
        self.on_change = on_change
        self.view = TrainingView()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as err:
            self.process = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                text=True, start_new_session=True,  # the TUI's Ctrl-C is not its stop
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._read, name="specscope-training", daemon=True).start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.view.returncode is None

    def stop(self) -> None:
        """Stop like Ctrl-C: the child keeps what it did (answers, hidden states, the head)."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.view.fold(event)
            self.on_change()
        self.process.wait()
        if self.process.returncode not in (0, 130):
            lines = [x for x in self.log.read_text(errors="replace").splitlines() if x.strip()]
            self.view.error = lines[-1] if lines else f"exit code {self.process.returncode}"
        self.view.returncode = self.process.returncode
        self.on_change()
