"""Keep the UI's drawing to a small share of the time while the engine runs.

The engine and the UI share one interpreter (and its GIL): every millisecond the UI spends
redrawing is a millisecond a Python-bound engine (small models, many steps a second) waits. So
the app folds events as they arrive (cheap) but redraws at most once per interval, the interval
being the last redraw's CPU cost divided by the budget: with a 3% budget, a redraw that costs
3 ms may happen every 0.1 s, one that costs 30 ms once a second. Big models, whose steps take
longer than that, still see every step.
"""
from __future__ import annotations

import time

BUDGET = 0.03  # share of wall time the UI may spend redrawing during a run
MIN_INTERVAL = 0.05  # never faster than 20 redraws a second
MAX_INTERVAL = 1.0  # never slower than one a second, however costly
FIRST_GUESS = 0.006  # a redraw's cost before one was measured (a small answer, 160x48 cells)


class Pacer:
    def __init__(self, budget: float = BUDGET, min_interval: float = MIN_INTERVAL,
                 max_interval: float = MAX_INTERVAL) -> None:
        self.budget = budget
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.cost = FIRST_GUESS  # CPU seconds of a redraw (smoothed), learned from the first one
        self.last = float("-inf")  # when the last redraw began

    @property
    def interval(self) -> float:
        return min(self.max_interval, max(self.min_interval, self.cost / self.budget))

    def delay(self) -> float:
        """Seconds to wait before the next redraw may start."""
        return max(0.0, self.last + self.interval - time.monotonic())

    def begin(self) -> float:
        """A redraw starts: returns a token for `end`."""
        self.last = time.monotonic()
        return time.thread_time()

    def end(self, token: float) -> None:
        """The redraw (and the screen update it caused) is done: learn its cost."""
        self.cost = 0.5 * self.cost + 0.5 * (time.thread_time() - token)
