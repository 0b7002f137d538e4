"""What a step's draft nodes became: emitted, dropped past the end, or not taken.

A draft can run past the end of the answer: the target accepts tokens after `<|im_end|>` (or a
stop string, or the token budget), but the step cuts them, and its own token is cut too. Those
nodes were on the accepted path yet never emitted; front ends show them as dropped and show no
correction. The core's `Verified` carries `dropped` and `token_emitted`; for events without them
(older JSON, hand-made events) they are derived from `emitted`.
"""
from __future__ import annotations

from specscope.core.events import Verified


def step_marks(verified: Verified) -> tuple[tuple[bool, ...], tuple[bool, ...], bool]:
    """(emitted accepted nodes, dropped nodes, whether the target's own token was emitted)."""
    dropped = getattr(verified, "dropped", None)
    if dropped is not None:
        return tuple(verified.accepted), tuple(dropped), bool(verified.token_emitted)
    path = [i for i, on in enumerate(verified.accepted) if on]  # parents precede children
    kept = len(verified.emitted)
    accepted = [False] * len(verified.accepted)
    cut = [False] * len(verified.accepted)
    for j, i in enumerate(path):
        (accepted if j < kept else cut)[i] = True
    return tuple(accepted), tuple(cut), kept > len(path)
