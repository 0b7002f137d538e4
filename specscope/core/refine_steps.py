"""How many Jacobi refinement passes to run per block (`--refine-steps auto`).

After T passes over a block of k guesses, positions 1..T are exact (the draft model's greedy
chain) and positions T+1..k are guesses. Both kinds get accepted at their own rates, so the
policy keeps two tables of per-position conditional acceptance, as AdaptiveLength does for the
draft length: a_exact[i] and a_guess[i] = P(position i accepted | positions < i accepted), each
counted from the steps where position i was of that kind. It picks the T that maximises the
expected tokens per second of a step,

    E(T) / (T t_pass + t_verify),   E(T) = 1 + sum_{i<=k} prod_{j<=i} a_j(T),
    a_j(T) = a_exact[j] if j <= T else a_guess[j],

with t_pass the measured seconds per refinement pass and t_verify the measured seconds from
handing the block out to hearing the verdict (the target's pass). More passes pay when they turn
guesses that would be rejected into exact tokens that would be accepted, and cost t_pass each.
A block that reaches a fixed point early is all exact and stops there (cheaper than T passes).
"""
from __future__ import annotations

from specscope.core.errors import SpecScopeError

START_STEPS = 2  # before anything is measured


class RefineSteps:
    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        # Beta-like priors: exact positions start optimistic, guesses pessimistic.
        self.exact = [[2.0, 1.2] for _ in range(max_len)]  # [reached, passed] per position
        self.guess = [[2.0, 0.4] for _ in range(max_len)]
        self.t_pass: float | None = None
        self.t_verify: float | None = None

    def choose(self, k: int) -> int:
        """Passes to run for a block of k positions (1..k)."""
        k = min(k, self.max_len)
        if self.t_pass is None or self.t_verify is None:
            return max(1, min(START_STEPS, k))
        best_t, best_rate = 1, -1.0
        for t in range(1, k + 1):
            rate = self.expected(t, k) / (t * self.t_pass + self.t_verify)
            if rate > best_rate:
                best_t, best_rate = t, rate
        return best_t

    def expected(self, t: int, k: int) -> float:
        """E(T): expected tokens a step emits with t passes over k positions (+1: the target's)."""
        total, survive = 1.0, 1.0
        for i in range(k):
            reached, passed = (self.exact if i < t else self.guess)[i]
            survive *= passed / reached
            total += survive
        return total

    def observe_costs(self, pass_s: float | None, verify_s: float | None) -> None:
        if pass_s is not None:
            self.t_pass = pass_s if self.t_pass is None else 0.8 * self.t_pass + 0.2 * pass_s
        if verify_s is not None:
            self.t_verify = verify_s if self.t_verify is None else 0.8 * self.t_verify + 0.2 * verify_s

    def observe(self, proposed: int, exact: int, accepted: int) -> None:
        """A verdict: `exact` leading positions of the `proposed` were exact, `accepted` taken."""
        for i in range(min(accepted + 1, proposed, self.max_len)):  # positions reached
            table = self.exact if i < exact else self.guess
            table[i][0] += 1
            table[i][1] += i < accepted
        for table, floor in ((self.exact, (1.0, 0.6)), (self.guess, (1.0, 0.2))):
            for row in table:  # forget old evidence slowly, so the estimates follow the text
                row[0] = floor[0] + (row[0] - floor[0]) * 0.97
                row[1] = floor[1] + (row[1] - floor[1]) * 0.97


def parse_refine_steps(value: str | None) -> int | None:
    """'3' -> 3; 'auto' or None -> None (the drafter picks each block's passes)."""
    if value is None or value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise SpecScopeError(f"--refine-steps must be a number or auto, got '{value}'") from None
