"""The draft panel: one step's proposal with q and p per node, the verdict and the target's token.

A chain (parents [-1, 0, 1, ...]) reads best as rows, one per position. Any other shape
is drawn as a tree from `Drafted.parents` (parents[i]: index of node i's parent, -1 for the
context). The accepted path is green, the first rejection red and marked, nodes past it dim, and
the target's own token (correction or bonus) closes the step in the target's colour. A draft that
ran past the end of the answer (EOS, a stop string, the token budget) has accepted nodes that
were cut: those are marked dropped, and a step that ended the answer shows no correction.
A block-refining drafter's passes (jacobi) come first (refinement.py); in teaching mode
`advance()` reveals them one at a time, then the verdict.
"""
from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree
from textual.containers import VerticalScroll
from textual.widget import Widget

from specscope.core.timeline import token_marks
from specscope.core.events import Drafted, Verified
from specscope.frontends.generate import STYLES, printable
from specscope.tui.widgets.refinement import has_refinement, refinement_lines
from specscope.frontends.marks import step_marks


TOKEN_CELLS = 24  # widest token column in a chain
EMPTY = Text("No step yet: send a prompt.", "dim")


def token_label(text: str) -> str:
    """A token's text on one line, quoted, with whitespace and control characters visible."""
    return "'" + printable(text).replace("\n", "\\n").replace("\t", "\\t") + "'"


def prob(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def is_chain(parents: tuple[int, ...]) -> bool:
    return all(parent == i - 1 for i, parent in enumerate(parents))


def verdict(i: int, verified: Verified, marks=None) -> tuple[str, str]:
    """(label, style) of proposal node i; `marks` is step_marks(verified), computed once."""
    accepted, dropped, _ = marks or step_marks(verified)
    if accepted[i]:
        return "✓ accepted", STYLES["accepted"]
    if dropped[i]:
        return "– dropped", STYLES["dropped"]
    if i == verified.first_rejected:
        return "✗ first rejection", "bold red"
    return "· not taken", "dim"


def target_line(verified: Verified) -> Text:
    if not step_marks(verified)[2]:
        return Text("■ the answer ended here: no target token", "dim")
    kind = "bonus" if verified.bonus else "correction"
    text = Text("→ ")
    text.append(token_label(verified.token_text), STYLES["target"])
    text.append(f"  target's {kind}" if verified.accepted or verified.first_rejected is not None
                else "  target's token (nothing drafted)", "dim")
    return text


def chain_lines(drafted: Drafted, verified: Verified) -> list[Text]:
    """A chain as fixed-width rows: position, token, q, p, verdict."""
    labels = [token_label(t) for t in drafted.texts]
    width = min(TOKEN_CELLS, max(5, *(cell_len(x) for x in labels)))
    marks = step_marks(verified)
    lines = [Text(f"{'#':>2}  {set_cell_size('token', width)}  {'q':>4}  {'p':>4}  verdict", "bold")]
    for i, label in enumerate(labels):
        text, style = verdict(i, verified, marks)
        if cell_len(label) > width:
            label = set_cell_size(label, width - 1) + "…"
        line = Text(f"{i + 1:>2}  ").append(set_cell_size(label, width), style)
        line.append(f"  {prob(drafted.q[i]):>4}  {prob(verified.p[i]):>4}  ").append(text, style)
        lines.append(line)
    return lines


def draft_tree(drafted: Drafted, verified: Verified) -> Tree:
    tree = Tree(Text(f"context ({drafted.context_len} tokens)", "bold"), guide_style="dim")
    nodes: list[Tree] = []
    marks = step_marks(verified)
    for i, (text, parent) in enumerate(zip(drafted.texts, drafted.parents)):
        label, style = verdict(i, verified, marks)
        line = Text(token_label(text), style)
        line.append(f"  q {prob(drafted.q[i])}  p {prob(verified.p[i])}  ", "default")
        line.append(label, style)
        under = tree if parent < 0 else nodes[parent]
        nodes.append(under.add(line, guide_style=STYLES["accepted"] if marks[0][i] else "dim"))
    accepted = [i for i, ok in enumerate(verified.accepted) if ok]  # the path, dropped nodes too
    last = nodes[accepted[-1]] if accepted else tree
    last.add(target_line(verified))
    return tree


def step_view(drafted: Drafted | None, verified: Verified, note: str = "",
              show_timings: bool = True, reveal: int | None = None) -> RenderableType:
    """The step as Text (a chain: cheap to draw) or as a rich Group holding a Tree.
    `reveal`: teaching mode's refinement rows shown so far (the verdict waits); None: all."""
    head = Text(f"step {verified.step + 1}", "bold")
    if drafted is not None:
        head.append(f" · {drafted.method} · k {drafted.draft_len} asked, {len(drafted.tokens)} drafted")
    if note:
        head.append(f"  {note}", "dim")
    dropped = sum(step_marks(verified)[1])
    summary = Text(f"accepted {verified.n_accepted}/{len(verified.accepted)}, "
                   f"emitted {len(verified.emitted)}" + (f", dropped {dropped}" if dropped else ""))
    if show_timings:
        summary.append(f" · draft {verified.draft_s * 1e3:.1f} ms · verify {verified.verify_s * 1e3:.1f} ms")
        if verified.requests:  # a served target: how much of verify was the server's compute
            server = "" if verified.server_s is None else f"server {verified.server_s * 1e3:.1f} ms, "
            summary.append(f" ({server}{verified.requests} requests)")
    if drafted is not None and drafted.overlap is not None:
        summary = Text("\n").join([summary, ahead_line(drafted, verified, show_timings)])
    if drafted is not None and drafted.tokens and not is_chain(drafted.parents):
        return Group(head, summary, Text(), draft_tree(drafted, verified))
    body = chain_lines(drafted, verified) if drafted is not None and drafted.tokens else []
    if has_refinement(drafted):
        passes = refinement_lines(drafted, token_label, reveal)
        if reveal is not None:
            return Text("\n").join([head, Text(), *passes])
        return Text("\n").join([head, summary, Text(), *passes, Text(), *body, target_line(verified)])
    return Text("\n").join([head, summary, Text(), *body, target_line(verified)])


BRANCHES = {"main": "the main branch (all accepted, the bonus guessed)",
            "hedge": "a hedge (from the target's correction)", "first": "nothing yet (first step)",
            "": "nothing that matched: drafted afresh"}


def ahead_line(drafted: Drafted, verified: Verified, show_timings: bool) -> Text:
    """Drafting ahead (--overlap): the branch used, the tokens kept, who waited."""
    o = drafted.overlap
    marks = token_marks(drafted, verified)
    kept = marks.count("kept")
    text = Text("ahead: ", "bold").append(f"from {BRANCHES.get(o.branch, o.branch)}; "
                                          f"{o.reused} reused ({kept} kept)", "default")
    if o.hedge_missed:
        text.append("; a hedge was ready there, with another token", "yellow")
    if show_timings:
        text.append(f" · before: drafter ahead {o.spec_s * 1e3:.0f} ms, idle "
                    f"{o.draft_idle_s * 1e3:.0f} ms · target waited {o.target_wait_s * 1e3:.0f} ms",
                    "dim")
    return text


class Body(Widget):
    """Holds the step's renderable; relayouts only when a Text's line count changes."""

    DEFAULT_CSS = "Body { height: auto; }"

    def __init__(self, renderable: RenderableType, **kwargs) -> None:
        super().__init__(**kwargs)
        self.renderable = renderable
        self.line_count = -1

    def set(self, renderable: RenderableType) -> None:
        self.renderable = renderable
        lines = renderable.plain.count("\n") + 1 if isinstance(renderable, Text) else None
        self.refresh(layout=lines is None or lines != self.line_count)
        self.line_count = -1 if lines is None else lines

    def render(self) -> RenderableType:
        return self.renderable


class DraftPanel(VerticalScroll):
    """Shows one step; `show_timings=False` keeps snapshots free of clock readings."""

    def __init__(self, show_timings: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.show_timings = show_timings
        self.border_title = "draft"
        self.step: tuple[Drafted | None, Verified] | None = None
        self.note = ""
        self.reveal: int | None = None  # teaching mode: refinement rows shown; None: everything

    def compose(self):
        yield Body(EMPTY, id="draft-body")

    def show(self, drafted: Drafted | None, verified: Verified, note: str = "",
             stepping: bool = False) -> None:
        """`stepping` (teaching mode): a refined block starts at its first guess; see advance."""
        self.step = (drafted, verified)
        self.note = note
        self.reveal = 0 if stepping and has_refinement(drafted) else None
        self._draw()

    def advance(self) -> bool:
        """Reveal the next refinement pass, or the verdict after the last; False when the step
        is already shown whole (the key then goes on to run the next step)."""
        if self.step is None or self.reveal is None:
            return False
        self.reveal += 1
        if self.reveal >= len(self.step[0].refinement):
            self.reveal = None
        self._draw()
        return True

    def _draw(self) -> None:
        drafted, verified = self.step
        self.query_one(Body).set(step_view(drafted, verified, self.note, self.show_timings,
                                           self.reveal))

    def clear(self) -> None:
        self.step = None
        self.reveal = None
        self.query_one(Body).set(EMPTY)
