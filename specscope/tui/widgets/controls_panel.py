"""The live controls: reactive settings that write through to the engine's `Controls`.

Each setting is a reactive attribute: `validate_*` clamps it, `watch_*` hands the new value to
the shared Controls object, which the engine reads when its next step begins. Nothing restarts.
"""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from specscope.core.controls import MAX_DRAFT_LEN, Controls
from specscope.core.window import SINKS
from specscope.session import METHODS, NEEDS_DRAFTER

MAX_TEMPERATURE = 2.0
ADAPTIVE_RULES = ("cost", "heuristic")  # Controls.adaptive_rule: expected tok/s, or +2 / -1
NO_VOCAB = "full (no trimmed vocabulary: --trimmed)"
HEAD_METHODS = ("mtp", "mtp-tree")


def window_text(controls: Controls, method: str) -> Text:
    """The draft model's cache bound (--draft-window): sinks + the last W tokens, or all; dim
    for methods that do not draft with the draft model."""
    w = getattr(controls, "draft_window", 0)
    text = f"{SINKS} sinks + last {w} tokens" if w else "unbounded (every token cached)"
    if method not in NEEDS_DRAFTER:
        return Text(f"{text} (unused by {method})", "dim")
    return Text(text, "" if w else "dim")


class ControlsPanel(Widget):
    draft_len = reactive(5)
    adaptive = reactive(False)
    adaptive_rule = reactive("cost")
    temperature = reactive(0.0)
    top_p = reactive(1.0)
    method = reactive("draft")
    vocab_top_k: reactive[int | None] = reactive(None)
    overlap = reactive(False)
    state = reactive("idle")

    def __init__(self, controls: Controls, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "controls"
        self.controls = controls
        self.methods = [controls.method]
        self.vocab_size: int | None = None  # rows of the trimmed ranking; None: no trimmed head
        self.vocab_default: int | None = None  # the size the drafter uses when none is chosen
        self.last_temperature = controls.temperature or 0.7  # what sampling mode returns to
        self.worker = ""  # the drafter's worker (drafting.drafting_label); "": none, no o key
        for name in ("draft_len", "adaptive", "temperature", "top_p", "method", "vocab_top_k",
                     "overlap"):
            self.set_reactive(getattr(ControlsPanel, name), getattr(controls, name))
        # How the engine picks adaptive lengths, where it offers a choice.
        self.rules = ADAPTIVE_RULES if hasattr(controls, "adaptive_rule") else ()
        if self.rules:
            self.set_reactive(ControlsPanel.adaptive_rule, controls.adaptive_rule)

    def set_session(self, methods: list[str], vocab_size: int | None,
                    vocab_default: int | None = None) -> None:
        """The loaded session's methods and trimmed vocabulary (rows, default size), if any."""
        self.methods = list(methods)
        self.vocab_size = vocab_size
        self.vocab_default = vocab_default or vocab_size
        self.refresh()

    # Clamps (validate_) and write-through to the engine (watch_).

    def validate_draft_len(self, value: int) -> int:
        return max(0, min(MAX_DRAFT_LEN, value))

    def validate_temperature(self, value: float) -> float:
        return round(max(0.0, min(MAX_TEMPERATURE, value)), 2)

    def validate_top_p(self, value: float) -> float:
        return round(max(0.05, min(1.0, value)), 2)

    def validate_vocab_top_k(self, value: int | None) -> int | None:
        if value is None or self.vocab_size is None:
            return None
        return max(1, min(self.vocab_size, value))

    def watch_draft_len(self, value: int) -> None:
        self.controls.draft_len = value

    def watch_adaptive(self, value: bool) -> None:
        self.controls.adaptive = value

    def watch_adaptive_rule(self, value: str) -> None:
        if self.rules:
            self.controls.adaptive_rule = value

    def watch_temperature(self, value: float) -> None:
        self.controls.temperature = value
        if value > 0:
            self.last_temperature = value

    def watch_top_p(self, value: float) -> None:
        self.controls.top_p = value

    def watch_method(self, value: str) -> None:
        self.controls.method = value

    def watch_vocab_top_k(self, value: int | None) -> None:
        self.controls.vocab_top_k = value

    def watch_overlap(self, value: bool) -> None:
        self.controls.overlap = value

    # Actions the app's keys call.

    def cycle_adaptive(self) -> None:
        """off -> on with each rule the engine offers, in turn -> off."""
        if not self.adaptive:
            if self.rules:
                self.adaptive_rule = self.rules[0]
            self.adaptive = True
        elif self.adaptive_rule in self.rules[:-1]:  # (`-k learned`, not in the cycle: off next)
            self.adaptive_rule = self.rules[self.rules.index(self.adaptive_rule) + 1]
        else:
            self.adaptive = False

    def next_method(self) -> None:
        i = self.methods.index(self.method) if self.method in self.methods else -1
        self.method = self.methods[(i + 1) % len(self.methods)]

    def toggle_overlap(self) -> bool:
        """Drafting ahead on / off; False without the drafter's worker to do it."""
        if not self.worker:
            return False
        self.overlap = not self.overlap
        return True

    def toggle_greedy(self) -> None:
        self.temperature = self.last_temperature if self.temperature == 0 else 0.0

    def scale_vocab(self, direction: int) -> bool:
        """Halve or double the drafter vocabulary; False when there is no trimmed head."""
        if self.vocab_size is None:
            return False
        current = self.vocab_top_k or self.vocab_default or self.vocab_size
        self.vocab_top_k = current * 2 if direction > 0 else max(1, current // 2)
        return True

    # Display.

    def render(self) -> Text:
        """One line a setting: its key, its name, its value (cheap: plain Text, fixed lines)."""
        state = {"generating": "green", "paused": "yellow", "error": "red"}.get(self.state, "")
        unused = " (ar drafts nothing)" if self.method == "ar" else ""
        rule = f", {self.adaptive_rule} rule" if self.rules else ""
        vocab = NO_VOCAB if self.vocab_size is None else (
            f"{self.vocab_top_k or self.vocab_default} of {self.vocab_size} rows")
        if self.method in HEAD_METHODS:  # FastMTP's head drafts over its own ranking
            vocab = (f"{self.vocab_top_k} of the head's ranked rows" if self.vocab_top_k
                     else "the head's own ranked rows") + " + the context's tokens"
        mode = "greedy" if self.temperature == 0 else "sampling"
        rows = [
            ("", "state", Text(self.state, f"bold {state}")),
            ("m", "method", Text(self.method).append(f"  {METHODS.get(self.method, '')}", "dim")),
            ("+/-", "draft length", f"{self.draft_len}{unused}"),
            ("a", "adaptive k", f"on{rule} (engine picks each k)" if self.adaptive else "off"),
            ("v/V", "drafter vocab", Text(vocab, "dim" if self.vocab_size is None
                                          and self.method not in HEAD_METHODS else "")),
            ("", "draft window", window_text(self.controls, self.method)),
            *([("o", "overlap", ("on: drafts ahead" if self.overlap else "off: takes turns")
                 + f"  ({self.worker})")] if self.worker else []),
            ("g", "mode", f"{mode}  (seed {self.controls.seed})"),
            ("t/T", "temperature", f"{self.temperature:.2f}"),
            ("p/P", "top-p", f"{self.top_p:.2f}"),
        ]
        out = Text(no_wrap=True, overflow="ellipsis")
        for i, (key, name, value) in enumerate(rows):
            out.append("\n" if i else "").append(f"{key:<4}", "dim").append(f"{name:<14}", "bold")
            out.append_text(Text(value) if isinstance(value, str) else value)
        return out
