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

    Events without `dropped` (hand-made, or JSON from before it existed) are read from `emitted`:
    the accepted path's first len(emitted) nodes were emitted, the rest were dropped, and the
    target's token was emitted only if emitted is longer than the path.
    """
    if verified.dropped:
        return tuple(verified.accepted), tuple(verified.dropped), bool(verified.token_emitted)
    path = [i for i, on in enumerate(verified.accepted) if on]  # parents precede children
    kept = len(verified.emitted)
    accepted = [False] * len(verified.accepted)
    dropped = [False] * len(verified.accepted)
    for j, i in enumerate(path):
        (accepted if j < kept else dropped)[i] = True
    return tuple(accepted), tuple(dropped), kept > len(path)
