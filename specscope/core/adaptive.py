"""Draft lengths that adapt while generating (`--draft-len auto`).

Two rules:
  heuristic  transformers' rule: +2 after a fully accepted draft, -1 otherwise (at least 1).
  cost       choose k maximising expected tokens per second,
                 E(k) / T(k),  E(k) = 1 + sum_{i<=k} prod_{j<=i} a_j,  T(k) = k t_draft + t_verify(k)
             with a_j the observed acceptance of position j given j-1 accepted, t_draft the measured
             seconds per drafted token and t_verify(k) a line fitted to measured verify times.
             k = 0 (plain decoding) wins when no length pays; then a short probe draft every few
             steps keeps the estimates fresh. It also sets a confidence cut-off for drafters that
             support one: stop drafting when the drafter's top probability falls below a threshold
             that rises when acceptance is low and falls when it is high (Draft & Verify).
"""
from __future__ import annotations

from collections import deque

MAX_AUTO_LEN = 12
PROBE_EVERY = 8  # steps of plain decoding between probe drafts


class AdaptiveLength:
    def __init__(self, start: int = 4, rule: str = "cost", max_len: int = MAX_AUTO_LEN) -> None:
        if rule not in ("cost", "heuristic"):
            raise ValueError(f"unknown adaptive rule {rule!r}")
        self.rule = rule
        self.max_len = max_len
        self.k = max(1, min(start, max_len))
        # per-position conditional acceptance, Beta(1.2, 0.8)-like prior: optimistic at first
        self.reached = [2.0] * max_len
        self.passed = [1.2] * max_len
        self.draft_per_token: float | None = None
        self.verify_samples: deque[tuple[int, float]] = deque(maxlen=48)
        self.threshold = 0.2 if rule == "cost" else 0.0
        self.plain_steps = 0

    # ---- what the engine asks before a step --------------------------------------------------
    def next_length(self) -> int:
        if self.rule == "heuristic":
            return self.k
        if self.draft_per_token is None or not self.verify_samples:
            return self.k  # nothing measured yet: start from the given length
        best_k, best_rate = 0, 1.0 / self._verify_time(0)
        expected, survive = 1.0, 1.0
        for k in range(1, self.max_len + 1):
            survive *= self.passed[k - 1] / self.reached[k - 1]
            expected += survive
            rate = expected / (k * self.draft_per_token + self._verify_time(k))
            if rate > best_rate:
                best_k, best_rate = k, rate
        if best_k == 0:
            self.plain_steps += 1
            if self.plain_steps % PROBE_EVERY == 0:
                return 2  # probe: keep acceptance and draft-cost estimates alive
        else:
            self.plain_steps = 0
        self.k = best_k
        return best_k

    @property
    def min_confidence(self) -> float:
        return self.threshold

    # ---- what the engine reports after a step ------------------------------------------------
    def observe(self, asked: int, proposed: int, accepted: int, draft_s: float, verify_s: float) -> None:
        self.verify_samples.append((proposed, verify_s))
        if proposed > 0:
            per_token = draft_s / proposed
            self.draft_per_token = per_token if self.draft_per_token is None else (
                0.8 * self.draft_per_token + 0.2 * per_token)
            for i in range(min(accepted + 1, proposed)):  # positions reached
                self.reached[i] += 1
                self.passed[i] += i < accepted
            self._decay()
        if self.rule == "heuristic":
            self.k = min(self.max_len, self.k + 2) if accepted == asked and asked > 0 else max(1, self.k - 1)
        elif proposed > 0:
            rate = accepted / proposed
            step = 0.05 if rate < 0.5 else -0.05
            self.threshold = min(0.8, max(0.02, self.threshold + step))

    def _decay(self, keep: float = 0.97) -> None:
        """Forget old evidence slowly so the estimates follow the text (code vs prose)."""
        for i in range(self.max_len):
            self.reached[i] = 1.0 + (self.reached[i] - 1.0) * keep
            self.passed[i] = 0.6 + (self.passed[i] - 0.6) * keep

    def _verify_time(self, k: int) -> float:
        """Least-squares line through measured (draft tokens, verify seconds)."""
        xs = [x for x, _ in self.verify_samples]
        ys = [y for _, y in self.verify_samples]
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var > 0 else 0.05 * my
        slope = max(0.0, slope)
        return max(1e-6, my + slope * (k - mx))
