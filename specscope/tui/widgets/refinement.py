"""How a block-refining drafter (jacobi) reached its proposal: the block after each parallel pass.

Row 0 is the first guess (prompt lookup, leftovers), row t the block after pass t. Tokens a pass
changed are highlighted; after pass t positions 1..t are exact (the draft model's greedy chain)
and the rest are still guesses (dim). A pass that leaves every input guess as it was has reached
the fixed point: the whole block is the greedy chain. In teaching mode the draft panel reveals
one row per key press, then the verdict.
"""
from __future__ import annotations

from collections.abc import Callable

from rich.text import Text

from specscope.core.events import Drafted

CHANGED = "bold black on yellow"
LABEL_CELLS = 7


def has_refinement(drafted: Drafted | None) -> bool:
    return drafted is not None and len(drafted.refinement) > 1


def refinement_lines(drafted: Drafted, label: Callable[[str], str], shown: int | None = None) -> list[Text]:
    """The guess and the block after each pass; `shown`: only rows 0..shown (teaching mode)."""
    blocks, texts = drafted.refinement, drafted.refinement_texts
    passes = len(blocks) - 1
    rows = len(blocks) if shown is None else min(shown + 1, len(blocks))
    lines = [Text(f"refinement: {passes} parallel pass{'es' * (passes != 1)} over "
                  f"{len(blocks[0])} positions", "bold")]
    for t in range(rows):
        line = Text(f"{'guess' if t == 0 else f'pass {t}':>{LABEL_CELLS}}  ")
        changed = 0
        for i, piece in enumerate(texts[t]):
            moved = t > 0 and blocks[t][i] != blocks[t - 1][i]
            changed += moved
            style = CHANGED if moved else "" if i < t else "dim"
            line.append(label(piece), style).append(" ")
        if t > 0:
            line.append(f" {changed} changed", "dim")
            if blocks[t][:-1] == blocks[t - 1][:-1]:
                line.append(" · fixed point", "bold")
        lines.append(line)
    if rows < len(blocks):
        lines.append(Text(f"{'':>{LABEL_CELLS}}  n: pass {rows}", "dim italic"))
    elif shown is not None:
        lines.append(Text(f"{'':>{LABEL_CELLS}}  n: the verdict", "dim italic"))
    return lines
