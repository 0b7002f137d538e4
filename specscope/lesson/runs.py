"""What every chapter shares: the lesson's context, a chapter's result, and one measured run.

A chapter is a plain function `run(lesson) -> Page`. It runs the engine on the loaded session
(never a canned number), keeps every run's events in `Page.runs` (so anyone, tests included, can
check a caption against the run it describes), and returns lines to show and a caption to read.
Front ends (the Textual lesson, the `--plain` transcript) only lay pages out.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rich.text import Text

from specscope.core.errors import SpecScopeError
from specscope.core.events import Drafted, Event, Finished, Prefilling, Summary, Verified
from specscope.frontends.generate import printable
from specscope.frontends.marks import step_marks


class Cancelled(Exception):
    """The viewer moved on or quit while a chapter was running."""


@dataclass
class Lesson:
    """The loaded session and the knobs every chapter uses."""

    session: object  # a specscope.session.Session
    max_new_tokens: int = 32
    cancelled: Callable[[], bool] = lambda: False
    progress: Callable[[str, int], None] = lambda label, tokens: None  # (run label, tokens so far)
    draft_quant: str | None = None  # hook for a quantized drafter (chapter 5), when one exists

    @property
    def has_drafter(self) -> bool:
        return self.session.drafter_lm is not None


@dataclass
class Run:
    label: str
    events: list[Event]

    @property
    def summary(self) -> Summary:
        return self.events[-1].summary

    def steps(self) -> list[tuple[Drafted, Verified]]:
        """(Drafted, Verified) pairs in order."""
        out, drafted = [], None
        for e in self.events:
            if isinstance(e, Drafted):
                drafted = e
            elif isinstance(e, Verified):
                out.append((drafted, e))
        return out

    @property
    def drafted_tokens(self) -> int:
        return sum(len(d.tokens) for d, _ in self.steps())

    def ms_per_token(self) -> float:
        """Draft + verify time per new token (prefill excluded)."""
        s = self.summary
        return (s.draft_s + s.verify_s) / s.new_tokens * 1e3 if s.new_tokens else 0.0

    def tokens_per_s(self) -> float:
        s = self.summary
        busy = s.draft_s + s.verify_s
        return s.new_tokens / busy if busy > 0 else 0.0


@dataclass
class Page:
    """One chapter as run: what to show (`body`), what to say (`caption`) and the runs behind it."""

    number: int
    title: str
    body: list[Text] = field(default_factory=list)
    caption: list[str] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)


def run(lesson: Lesson, label: str, prompt: str, **overrides) -> Run:
    """One engine run on the lesson's session, watched for cancellation; returns its events."""
    session = lesson.session
    overrides.setdefault("max_new_tokens", lesson.max_new_tokens)
    controls = session.controls(**overrides)
    ids = session.encode(prompt)
    session.check(controls, ids)
    events: list[Event] = []
    tokens = 0
    stream = session.decoder.run(ids, controls)
    try:
        for event in stream:
            events.append(event)
            if isinstance(event, Verified):
                tokens += len(event.emitted)
                lesson.progress(label, tokens)
            elif isinstance(event, Prefilling):  # a long prompt: tokens read so far
                who = "reading the prompt" if event.model == "target" else "drafter reading it"
                lesson.progress(f"{label}, {who}", event.done)
            if lesson.cancelled():
                raise Cancelled()
    finally:
        stream.close()
    if not isinstance(events[-1], Finished):
        raise SpecScopeError(f"run '{label}' ended without a summary")
    return Run(label, events)


def fresh(lesson: Lesson, method: str) -> None:
    """Forget a drafter's per-run state (a phrase pool, caches) so a chapter starts clean."""
    lesson.session.decoder.drafter(method).reset()


def tok(text: str) -> str:
    """A token's text, quoted, on one line."""
    return "'" + printable(text).replace("\n", "\\n").replace("\t", "\\t") + "'"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def answer_text(r: Run, width: int = 72) -> Text:
    """The run's answer on one or more lines, clipped, control characters visible."""
    text = printable(r.summary.text).replace("\n", "\\n")
    if len(text) > width * 2:
        text = text[: width * 2 - 1] + "…"
    return Text(text, "italic")


def step_table(drafted: Drafted, verified: Verified) -> list[Text]:
    """A chain step as rows: position, token, q, p, verdict; then the target's own token."""
    accepted, dropped, token_emitted = step_marks(verified)
    lines = [Text(f"{'#':>2}  {'token':<16} {'q':>5} {'p':>5}  verdict", "bold")]
    for i, text in enumerate(drafted.texts):
        q = drafted.q[i]
        label = tok(text)
        label = label if len(label) <= 16 else label[:15] + "…"
        if accepted[i]:
            verdict, style = "✓ accepted", "green"
        elif dropped[i]:
            verdict, style = "– dropped (past the end)", "dim"
        elif i == verified.first_rejected:
            verdict, style = "✗ rejected", "bold red"
        else:
            verdict, style = "· not checked further", "dim"
        q_text = "–" if q is None else f"{q:.2f}"
        lines.append(Text(f"{i + 1:>2}  {label:<16} {q_text:>5} {verified.p[i]:>5.2f}  {verdict}", style))
    if not token_emitted:
        lines.append(Text("  the answer ended: no token of the target's own this step", "dim"))
        return lines
    kind = "bonus" if verified.bonus else "correction"
    lines.append(Text(f"→ {tok(verified.token_text)}  the target's own token ({kind})", "bold cyan"))
    return lines
