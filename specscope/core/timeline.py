"""A timeline per step for drafting ahead (--overlap): who worked, who waited, which tokens drafted
ahead were kept and which branch was used. Built from the engine's events alone, so every front
end (the TUI's draft panel, generate --json, bench) shows the same thing.

A step n spans the target's wait for its proposal and its verification:

    target   [ wait_s (for the proposal) ][ verify_s ...................... ]
    drafter  [ draft_s (the proposal)    ][ ahead_s (the next step's branches) ][ idle ]

ahead_s is what the worker reports with the next proposal (Overlap.spec_s), so a step's
timeline is complete when the next step's Drafted event arrives; the run's last step has none.
The proposal's tokens are marked: 'kept' (drafted ahead, then accepted), 'reused' (drafted
ahead, refused by the target), 'accepted' and 'rejected' (drafted after the verdict), '' for
nodes the verdict never reached.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from specscope.core.events import Drafted, Verified
from specscope.core.tree import children


@dataclass(frozen=True)
class StepTimeline:
    step: int
    wait_s: float  # the target waiting for the proposal (the drafter drafting it)
    verify_s: float  # the target verifying
    ahead_s: float  # the drafter drafting ahead during that verification (its branches)
    drafter_idle_s: float  # the drafter with nothing to do since it answered (worker-measured)
    branch: str  # where this step's proposal came from: main, hedge, '' (afresh), first
    next_branch: str  # the branch the verdict left for the next step ('' none, '?' not known)
    hedge_missed: bool  # the verdict cut where a hedge was ready, with another token
    predrafted: int  # tokens drafted ahead during this verification
    marks: tuple[str, ...]  # per proposal token: kept, reused, accepted, rejected, ''
    kind: str = "timeline"

    def as_dict(self) -> dict:
        return asdict(self)


def token_marks(drafted: Drafted, verified: Verified) -> tuple[str, ...]:
    """kept / reused / accepted / rejected / '' for each node of the proposal."""
    reused = drafted.overlap.reused if drafted.overlap is not None else 0
    kids = children(list(drafted.parents))
    main, node = [], -1  # the first-child path: where the reused rows sit
    while kids[node]:
        node = kids[node][0]
        main.append(node)
    ahead = set(main[:reused])
    out = []
    for i in range(len(drafted.tokens)):
        ok = verified.accepted[i] if i < len(verified.accepted) else False
        tried = ok or i == verified.first_rejected
        if i in ahead:
            out.append("kept" if ok else "reused")
        else:
            out.append("accepted" if ok else ("rejected" if tried else ""))
    return tuple(out)


class TimelineBuilder:
    """Feed it the run's events in order; add() returns the timelines it completed."""

    def __init__(self) -> None:
        self._pending: tuple[Drafted, Verified] | None = None
        self._drafted: Drafted | None = None

    def add(self, event) -> list[StepTimeline]:
        out = []
        if isinstance(event, Drafted):
            if self._pending is not None:
                out.append(self._make(*self._pending, event))
                self._pending = None
            self._drafted = event
        elif isinstance(event, Verified) and self._drafted is not None:
            self._pending = (self._drafted, event)
            self._drafted = None
        return out

    def finish(self) -> list[StepTimeline]:
        """The last step's timeline (nothing drafted ahead after it is known)."""
        out = [self._make(*self._pending, None)] if self._pending is not None else []
        self._pending = None
        return out

    @staticmethod
    def _make(drafted: Drafted, verified: Verified, following: Drafted | None) -> StepTimeline:
        o, nxt = drafted.overlap, following.overlap if following is not None else None
        return StepTimeline(
            step=drafted.step,
            wait_s=o.target_wait_s if o is not None else drafted.draft_s,
            verify_s=verified.verify_s,
            ahead_s=nxt.spec_s if nxt is not None else 0.0,
            drafter_idle_s=nxt.draft_idle_s if nxt is not None else 0.0,
            branch=o.branch if o is not None else "",
            next_branch=nxt.branch if nxt is not None else "?",
            hedge_missed=nxt.hedge_missed if nxt is not None else False,
            predrafted=nxt.predrafted if nxt is not None else 0,
            marks=token_marks(drafted, verified))


LANE = {"wait": "·", "verify": "█", "draft": "▒", "ahead": "▓", "idle": " "}


def lanes(t: StepTimeline, width: int = 40) -> tuple[str, str]:
    """Two text lanes of `width` cells on one scale: the target's, then the drafter's."""
    total = max(t.wait_s + t.verify_s, t.wait_s + t.ahead_s, 1e-9)

    def cells(seconds: float) -> int:
        return round(width * seconds / total)

    wait = cells(t.wait_s)
    verify = width - wait
    ahead = min(cells(t.ahead_s), width - wait)
    target = LANE["wait"] * wait + LANE["verify"] * verify
    drafter = LANE["draft"] * wait + LANE["ahead"] * ahead + LANE["idle"] * (width - wait - ahead)
    return target, drafter
