"""What a step's draft nodes became: emitted, dropped past the end, or not taken.

A draft can run past the end of the answer: the target accepts tokens after `<|im_end|>` (or a
stop string, or the token budget), but the step cuts them, and its own token is cut too. The
core's `Verified` says so (`accepted` = accepted and emitted, `dropped`, `token_emitted`); front
ends show dropped nodes as dropped and no correction when the target's token was cut.
"""
from __future__ import annotations

from specscope.core.events import Verified


def step_marks(verified: Verified) -> tuple[tuple[bool, ...], tuple[bool, ...], bool]:
    """(emitted accepted nodes, dropped nodes, whether the target's own token was emitted).

    Hand-made events may leave `dropped` empty: nothing was dropped.
    """
    dropped = tuple(verified.dropped) or (False,) * len(verified.accepted)
    return tuple(verified.accepted), dropped, bool(verified.token_emitted)
