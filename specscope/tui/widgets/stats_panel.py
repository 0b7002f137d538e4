"""The stats panel: the current run's metrics, refreshed at every batch of steps.

tau, acceptance, per-position acceptance (bars), tokens/s, the draft/verify time split, MBSU,
the costs (a drafted token against a target pass), the bytes held by the target's and the
drafter's KV caches, and the speedup over plain decoding: measured when a baseline run exists
(key b: method ar, same prompt, same engine), otherwise estimated as
tau * t_verify / (t_draft + t_verify), i.e. assuming one plain decoding step costs about one
verify pass. The label says which.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

from specscope.core.stats import Stats, byte_size
from specscope.frontends.generate import remote_cost_text

BLOCKS = " ▏▎▍▌▋▊▉█"
MAX_POSITIONS = 12
HIDDEN = "— (timings hidden)"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of `width` cells filled to `fraction`, in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[part] if part else "")).ljust(width)


@dataclass
class Baseline:
    tokens_per_s: float
    new_tokens: int
    target_pass_s: float | None = None  # a plain step's verify seconds: one target pass


class StatsPanel(Widget):
    def __init__(self, show_timings: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.show_timings = show_timings
        self.border_title = "stats"
        self.stats = Stats()
        self.method = ""
        self.active_s = 0.0
        self.draft_len: int | None = None  # the length the engine chose for the latest step
        self.note = ""
        self.baseline: Baseline | None = None
        self.text = Text()
        self._line_count = 0

    def on_mount(self) -> None:
        self.refresh_view()

    def reset(self, method: str, param_ratio: float) -> None:
        self.stats = Stats(param_ratio)
        self.method = method
        self.active_s = 0.0
        self.draft_len = None
        self.note = ""
        self.refresh_view()

    @property
    def tokens_per_s(self) -> float:
        return len(self.stats.token_ids) / self.active_s if self.active_s > 0 else 0.0

    def speedup(self) -> tuple[str, str]:
        s = self.stats
        if not s.steps:
            return "–", ""
        if self.baseline and self.active_s > 0:
            x = self.tokens_per_s / self.baseline.tokens_per_s
            return (f"{x:.2f}×", f"measured vs ar: {self.baseline.tokens_per_s:.1f} tok/s, "
                    f"{self.baseline.new_tokens} tokens")
        total = s.draft_s + s.verify_s
        x = s.tau * s.verify_s / total if total > 0 else 0.0
        return f"≈{x:.2f}×", "estimated: plain step ≈ verify pass (b measures)"

    def costs(self) -> str:
        """A drafted token's cost against a target pass: why drafting pays here, or not."""
        s = self.stats
        if not s.steps:
            return "–"
        verify = s.verify_s / s.steps
        text = f"verify {verify * 1000:.0f} ms ({s.drafted / s.steps + 1:.1f} tokens)"
        if s.drafted:
            draft = s.draft_s / s.drafted
            plain = self.baseline.target_pass_s if self.baseline else None
            text = f"draft token {draft * 1000:.0f} ms = {draft / (plain or verify):.2f} of a " \
                   f"{'target pass' if plain else 'verify pass'} · " + text
        return text

    def refresh_view(self) -> None:
        """Redraw; a layout pass (costly: the whole screen) only when the line count changes."""
        lines = self.lines()
        self.text = Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
        self.refresh(layout=len(lines) != self._line_count)
        self._line_count = len(lines)

    def render(self) -> Text:
        return self.text

    def lines(self) -> list[Text]:
        s = self.stats
        k = "–" if self.draft_len is None else str(self.draft_len)
        out = [row("run", f"{self.method or '–'} · {len(s.token_ids)} tokens · {s.steps} steps"
                          f" · k {k}{self.note}"),
               row("tau", f"{s.tau:.2f} tokens per target pass"),
               row("acceptance", f"{s.acceptance_rate:.0%} ({s.accepted}/{s.drafted} drafted)"),
               row("MBSU", f"{s.mbsu:.2f}  (r = {s.param_ratio:.3f})")]
        if self.show_timings:
            out.append(row("tok/s", f"{self.tokens_per_s:.1f}  ({self.active_s:.2f} s generating, "
                                    "pauses excluded)"))
            total = s.draft_s + s.verify_s
            share = s.draft_s / total if total > 0 else 0.0
            cells = round(share * 12)
            split = Text(f"draft {share:.0%} ")
            split.append("█" * cells, "magenta").append("█" * (12 - cells), "blue")
            split.append(f" verify {1 - share:.0%} · {s.draft_s:.2f}/{s.verify_s:.2f} s")
            out.append(row("time", split))
            out.append(row("costs", self.costs()))
            if s.requests:  # a served target: its compute apart from the round trips
                out.append(row("remote", remote_cost_text(s)))
            value, label = self.speedup()
            out.append(row("speedup", Text(value, "bold").append(f"  {label}", "dim")))
        else:
            out += [row(name, Text(HIDDEN, "dim")) for name in ("tok/s", "time", "speedup")]
        # after the seven headline rows, which a short terminal keeps (app.tcss: .-compact)
        out.append(row("KV memory", f"target {byte_size(s.kv_target_bytes)} · drafter "
                                    f"{byte_size(s.kv_draft_bytes)}" if s.steps else "–"))
        out.append(Text("acceptance by draft position", "bold"))
        rates = s.per_position
        if not rates:
            out.append(Text("no drafts yet", "dim"))
        for i, rate in enumerate(rates[:MAX_POSITIONS]):
            out.append(Text(f"{i + 1:>2} ").append(bar(rate, 20), "green").append(f" {rate:>4.0%}"))
        if len(rates) > MAX_POSITIONS:
            out.append(Text(f"   … {len(rates) - MAX_POSITIONS} more positions", "dim"))
        return out


def row(label: str, value: str | Text) -> Text:
    return Text(f"{label:<11}", "bold").append_text(Text(value) if isinstance(value, str) else value)
