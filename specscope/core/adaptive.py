"""Draft lengths that adapt while generating (`--draft-len auto`).

Two rules:
  heuristic  transformers' rule: +2 after a fully accepted draft, -1 otherwise (at least 1).
  cost       choose k maximising expected tokens per second,
                 E(k) / T(k),  E(k) = 1 + sum_{i<=k} prod_{j<=i} a_j,  T(k) = k t_draft + t_verify(k)
             with a_j the observed acceptance of position j given j-1 accepted (a prior of 0.6
             until seen), t_draft the measured seconds per drafted token (before the first
             draft: the drafter/target weight ratio times a target pass) and t_verify(k) a line
             fitted to measured verify times. k = 0 (plain decoding) wins when no length pays;
             then a short probe draft every few steps keeps the estimates fresh.

With --overlap (drafting ahead while the target verifies, drafters/overlap.py) a step costs
only the drafting its verification did not hide: the worker drafts the next proposal's first
min(k, t_verify(k) / t_draft) tokens during the verification, used when the verdict accepts all
k tokens and the drafter guessed the bonus (chance h(k) = prod_{j<=k+1} a_j), so

    T(k) = t_verify(k) + t_draft * (k - h(k) * min(k, t_verify(k) / t_draft))

and t_draft is measured on the tokens drafted while the target waited. The budget whose
drafting the verification hides whole, k with k t_draft = t_verify(k), is DuoDecoding's
hardware-aware draft budget (match_len); the rule maximises E(k) / T(k) around it.

The costs a per-token rate does not see are counted apart:
  - the drafter's prefill: before its first draft of a run, a model drafter must read the whole
    prompt (seconds for a long prompt, compute-bound). The rule drafts only when the expected
    saving over the tokens still to generate repays it (estimated from the target's prefill
    time times the weight ratio, then from what the first drafts of earlier runs measured,
    averaged; a run that stayed plain because of it forgets the measurement, so one spike
    cannot keep every later run plain);
  - probes: while plain decoding wins, a probe draft of PROBE_LEN tokens every few steps keeps
    the estimates fresh; each probe that does not bring drafting back doubles the wait before
    the next (PROBE_EVERY up to PROBE_MAX steps), and no probe runs at all where drafting could
    not pay even at OPTIMISTIC acceptance (a drafted token that costs about a target pass, a
    compute-bound verification): there `auto` costs nothing measurable;
  - before anything is measured in this session, the machine's own measured costs (`specscope
    doctor`: the verify curve t(r)/t(1) and a drafted token over a target pass) stand in for
    the guesses, so the first drafts of a run are not made on a cost the machine does not have;
  - each drafted token's own cost: the drafter stops when the confidence of its path (product
    of its top probabilities) falls below the cost ratio t_draft / t_target: a token is worth
    drafting only if its chance of being accepted exceeds what it costs, relative to a target
    pass (with a 0.4 ratio this is transformers' 0.4 confidence threshold; a cheap drafter
    drafts deeper). The rule's first step is plain, which measures t_target.
"""
from __future__ import annotations

from collections import deque

from specscope.core.chooser import interpolate

MAX_AUTO_LEN = 12
PROBE_EVERY = 8  # steps of plain decoding before the first probe draft
PROBE_MAX = 64  # the longest wait between probes (the wait doubles after each failed probe)
PROBE_LEN = 2
PRIOR_PASS, PRIOR_REACH = 1.2, 2.0  # Beta-like prior: 0.6 conditional acceptance per position
OPTIMISTIC = 0.8  # acceptance per position assumed when deciding whether to try drafting at all
DRAFT_OVERHEAD = 1.2  # a drafted token costs about this much more than its weights' share


class AdaptiveLength:
    def __init__(self, start: int = 4, rule: str = "cost", max_len: int = MAX_AUTO_LEN,
                 verify_curve: dict[int, float] | None = None,
                 draft_ratio: float | None = None, overlap: bool = False) -> None:
        """verify_curve: a pass over r tokens in 1-token passes, measured on this machine;
        draft_ratio: a drafted token in target passes, measured (both optional priors)."""
        if rule not in ("cost", "heuristic"):
            raise ValueError(f"unknown adaptive rule {rule!r}")
        self.rule = rule
        self.overlap = overlap  # the drafter drafts ahead while the target verifies
        self.max_len = max_len
        self.k = max(1, min(start, max_len))
        self.reached = [PRIOR_REACH] * max_len
        self.passed = [PRIOR_PASS] * max_len
        self.draft_per_token: float | None = None
        self.verify_samples: deque[tuple[int, float]] = deque(maxlen=48)
        self.plain_steps = 0
        self.ratio = 0.0  # drafter/target weights read per token (0: a model-free drafter)
        self.prefill_ratio: float | None = None  # drafter prefill / target prefill, measured
        self.remaining = 1 << 30  # tokens still to generate in this run
        self.target_prefill_s = 0.0
        self.cold = False  # the drafter has not drafted in this run yet (its prefill is ahead)
        self.declined = False  # this run stayed plain because the drafter's prefill would not pay
        self.verify_curve = dict(verify_curve or {})
        self.draft_ratio = draft_ratio
        self.probe_every = PROBE_EVERY
        self.probing = False  # the step under way is a probe

    # ---- what the engine tells the policy at the start of a run -------------------------------
    def start_run(self, ratio: float, target_prefill_s: float, budget: int) -> None:
        if self.cold and self.declined:
            # the last run never drafted because of the measured prefill: that one measurement
            # (a spike, or another prompt) must not keep every later run plain, and no draft
            # can re-measure it while it does; start again from the weight-ratio estimate
            self.prefill_ratio = None
        self.declined = False
        self.ratio = ratio
        self.target_prefill_s = target_prefill_s
        self.remaining = budget
        self.cold = ratio > 0
        self.plain_steps = 0

    # ---- what the engine asks before a step --------------------------------------------------
    def next_length(self) -> int:
        if self.rule == "heuristic":
            return self.k
        if not self.verify_samples:
            return 0  # first step plain: it measures a target pass
        if self.cold:
            # Before the drafter's first draft of the run: try only if drafting, should it go
            # well, would repay the drafter's prefill over the tokens still to generate.
            best_k, best_rate = self._best([OPTIMISTIC] * self.max_len)
            saving = self.remaining * (self._verify_time(0) - 1.0 / best_rate)  # seconds
            self.k = best_k if saving > self._drafter_prefill() else 0
            self.declined = self.k == 0
            return self.k
        best_k, _ = self._best([a / r for a, r in zip(self.passed, self.reached)])
        if best_k == 0:
            self.plain_steps += 1
            if self.plain_steps >= self.probe_every and self._could_pay():
                # probe: keep acceptance and draft-cost estimates alive (observe() doubles the
                # wait before the next one unless this one is wholly accepted)
                self.plain_steps = 0
                self.probing = True
                self.k = 0
                return PROBE_LEN
        else:
            self.plain_steps = 0
            self.probe_every = PROBE_EVERY
        self.k = best_k
        return best_k

    def _could_pay(self) -> bool:
        """Whether drafting would beat plain decoding at OPTIMISTIC acceptance with the costs as
        measured: where it would not, probing only loses time."""
        return self._best([OPTIMISTIC] * self.max_len)[0] > 0

    def _best(self, acceptance: list[float]) -> tuple[int, float]:
        """The length with the most expected tokens per second, and that rate (k=0: plain)."""
        t_draft = self._draft_time()
        best_k, best_rate = 0, 1.0 / self._verify_time(0)
        expected, survive = 1.0, 1.0
        for k in range(1, self.max_len + 1):
            survive *= acceptance[k - 1]
            expected += survive
            hidden = 0.0
            if self.overlap:  # drafted ahead during the verification, used on a main-branch hit
                hit = survive * acceptance[min(k, self.max_len - 1)]
                hidden = hit * min(k * t_draft, self._verify_time(k))
            rate = expected / (k * t_draft - hidden + self._verify_time(k))
            if rate > best_rate:
                best_k, best_rate = k, rate
        return best_k, best_rate

    def match_len(self) -> int:
        """DuoDecoding's budget: the most tokens whose drafting one verification hides."""
        t_draft = self._draft_time()
        k = 1
        while k < self.max_len and (k + 1) * t_draft <= self._verify_time(k + 1):
            k += 1
        return k

    @property
    def min_confidence(self) -> float:
        """The path-confidence cut-off for the drafter (0: off)."""
        if self.rule == "heuristic" or not self.verify_samples:
            return 0.0
        return min(0.8, max(0.02, self._draft_time() / self._verify_time(0)))

    # ---- what the engine reports after a step ------------------------------------------------
    def observe(self, asked: int, proposed: int, accepted: int, draft_s: float, verify_s: float,
                nodes: int | None = None, emitted: int = 1, reused: int = 0) -> None:
        """asked: the length asked; proposed: the proposal's depth (tokens of a chain); accepted:
        accepted depth; nodes: drafted tokens (a tree's node count; default `proposed`);
        reused: of them, drafted ahead (draft_s did not pay for them)."""
        nodes = proposed if nodes is None else nodes
        self.verify_samples.append((nodes, verify_s))
        if self.probing:
            self.probing = False
            whole = proposed > 0 and accepted >= proposed
            self.probe_every = PROBE_EVERY if whole else min(PROBE_MAX, 2 * self.probe_every)
        self.remaining = max(0, self.remaining - emitted)
        if nodes > 0:
            if self.cold:  # the first draft of the run paid the drafter's prefill
                self.cold = False
                if self.target_prefill_s > 0:
                    prefill = max(0.0, draft_s - nodes * self._draft_time())
                    ratio = prefill / self.target_prefill_s
                    self.prefill_ratio = ratio if self.prefill_ratio is None else (
                        0.5 * self.prefill_ratio + 0.5 * ratio)
            elif nodes > reused:
                per_token = draft_s / (nodes - reused)
                self.draft_per_token = per_token if self.draft_per_token is None else (
                    0.8 * self.draft_per_token + 0.2 * per_token)
            for i in range(min(accepted + 1, proposed, self.max_len)):  # depths reached
                self.reached[i] += 1
                self.passed[i] += i < accepted
            self._decay()
        if self.rule == "heuristic":
            self.k = min(self.max_len, self.k + 2) if accepted == asked and asked > 0 else max(1, self.k - 1)

    def _draft_time(self) -> float:
        if self.draft_per_token is not None:
            return self.draft_per_token
        if self.draft_ratio is not None and self.ratio > 0:  # measured on this machine
            return self.draft_ratio * self._verify_time(0)
        return DRAFT_OVERHEAD * self.ratio * self._verify_time(0)

    def _drafter_prefill(self) -> float:
        ratio = self.prefill_ratio if self.prefill_ratio is not None else DRAFT_OVERHEAD * self.ratio
        return ratio * self.target_prefill_s

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
        if var == 0 and self.verify_curve and mx == 0:  # only plain passes seen: the machine's curve
            return max(1e-6, my * interpolate(self.verify_curve, k + 1))
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var > 0 else 0.05 * my
        slope = max(0.0, slope)
        return max(1e-6, my + slope * (k - mx))

