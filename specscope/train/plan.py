"""`mtp train --minutes M`: one budget for the whole run, planned from measured rates (a pure
function: rates in, plan out; tests give fixed rates).

The budget is the wall time from launch to the artifact. Its stages, in order:

- start: loading the models and measuring the rates (already spent when the plan is made);
- answers: the target's greedy answers (self-distillation): the prompts held apart for the
  selection and the estimate first (always), then as many training prompts as fit;
- sampled: more answers to the training prompts, sampled at a temperature by the drafter (or
  the target, for a profile without one);
- hidden: the target's teacher-forced hidden states over every new sequence;
- train: the head's training: what is left;
- finish: the held-out estimate on the kept weights and the artifact.

Planned stages sum to the budget. While the run goes, `replan` moves the remaining time: a stage
that overruns shortens the next flexible one (the sampled answers, then the training), one that
ends early lengthens them. Answers and hidden states already on disk cost nothing.

The shares are a choice (not a measured optimum): the greedy answers get at most ANSWER_SHARE of
the time left after the start, the sampled ones at most SAMPLED_SHARE, and training at least
MIN_TRAIN_SHARE: the earlier sessions' best head spent most of its wall time training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

ANSWER_SHARE = 0.30
SAMPLED_SHARE = 0.15
MIN_TRAIN_SHARE = 0.45
# the recipe a budget plans (the defaults of `mtp train`)
RECIPE_SAMPLES = 4  # answers a training prompt gets in all: the greedy one and 3 sampled
RECIPE = {"max_new_tokens": 256, "batch": 16, "temperature": 0.7, "lr": 1.5e-4}
DEFAULT_MINUTES = 30.0
STAGES = ("start", "answers", "sampled", "hidden", "train", "finish")
LABELS = {"start": "loading and rates", "answers": "answers", "sampled": "sampled answers",
          "hidden": "hidden states", "train": "training", "finish": "estimate"}


class BudgetTooShort(ValueError):
    """The held-apart prompts' answers and hidden states alone do not fit the budget."""

    def __init__(self, need_s: float) -> None:
        super().__init__(f"needs at least {math.ceil(need_s / 60)} min on this machine")
        self.need_s = need_s


@dataclass(frozen=True)
class Rates:
    """What this machine does a second, measured on the pair (train/rates.py)."""

    prefill_tps: float  # the target's prompt tokens a second, in a batch of `batch`
    step_s: float  # one decoding step of a full batch of the target's answers
    hidden_tps: float  # teacher-forced tokens a second (the hidden states)
    train_tps: float  # trained positions a second (the head, forward and backward)
    batch: int
    drafter_prefill_tps: float | None = None  # the same for the drafter (None: no drafter)
    drafter_step_s: float | None = None
    prompt_tokens: float = 0.0  # the measured prompts' mean length (for estimates before a run)


@dataclass(frozen=True)
class Work:
    """What the run may do: counts of prompts and what is already on disk."""

    held: int  # prompts held apart (selection + estimate): their greedy answers are needed
    held_cached: int  # of those, answered already
    train_available: int  # training prompts that could be answered
    train_cached: int  # of those, answered already (free: always used, counted first)
    prompt_tokens: float  # a prompt's mean length
    answer_tokens: int  # an answer's length (--max-new-tokens: an upper bound)
    samples: int  # answers a training prompt may get in all (1: the greedy one only)
    sampled_cached: int = 0  # sampled answers on disk already
    hidden_cached: int = 0  # sequences whose hidden states are on disk already
    fixed_prompts: bool = False  # the user named the prompts (--limit): all of them are answered
    fixed_samples: bool = False  # the user named --samples
    drafter: bool = True  # sampled answers by the drafter (else by the target)


@dataclass(frozen=True)
class Plan:
    budget_s: float
    seconds: dict  # stage -> planned seconds (STAGES order); sums to budget_s
    train_prompts: int  # training prompts with a greedy answer
    samples: int  # answers per training prompt (greedy + sampled)
    longer: tuple[float, int] | None = None  # few prompts: (minutes, prompts) of a longer budget

    def line(self) -> str:
        """'loading and rates 95 s, answers 9 min, hidden states 4 min, training 17 min' (the
        stages that take time; loading always: the budget counts from launch)."""
        parts = [f"{LABELS[s]} {_minutes(self.seconds[s])}" for s in STAGES
                 if self.seconds[s] >= 0.5 or s == "start"]
        return ", ".join(parts)

    def end_of(self, stage: str) -> float:
        """Seconds from launch at which `stage` is planned to end."""
        return sum(self.seconds[s] for s in STAGES[:STAGES.index(stage) + 1])


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def answers_s(n: int, rates: Rates, work: Work, drafter: bool = False) -> float:
    """Seconds for n answers: batches of a prompt read (prefill) and answer_tokens steps."""
    if n <= 0:
        return 0.0
    prefill = rates.drafter_prefill_tps if drafter else rates.prefill_tps
    step = rates.drafter_step_s if drafter else rates.step_s
    batches = math.ceil(n / rates.batch)
    return batches * (min(n, rates.batch) * work.prompt_tokens / prefill + work.answer_tokens * step)


def hidden_s(sequences: int, prompts: int, rates: Rates, work: Work) -> float:
    """Seconds for the hidden states of `sequences` answers over `prompts` prompts (the samples
    of one prompt read it once)."""
    tokens = prompts * work.prompt_tokens + sequences * work.answer_tokens
    return tokens / rates.hidden_tps


def plan_budget(budget_s: float, spent_s: float, rates: Rates, work: Work,
                finish_s: float = 0.0) -> Plan:
    """The plan for a run of `budget_s` seconds, `spent_s` of them gone (loading, measuring).
    Raises BudgetTooShort when the held-apart prompts alone do not fit."""
    left = budget_s - spent_s - finish_s
    can_sample = work.samples > 1 and (not work.drafter or rates.drafter_step_s is not None)
    held_new = work.held - work.held_cached
    need = answers_s(held_new, rates, work) + hidden_s(held_new, held_new, rates, work)
    if need > (1 - MIN_TRAIN_SHARE) * left:
        raise BudgetTooShort(spent_s + finish_s + need / (1 - MIN_TRAIN_SHARE))

    def cost(n: int, s: int) -> tuple[float, float, float]:
        """(answers, sampled, hidden) seconds with n training prompts and s answers each."""
        new = max(0, n - work.train_cached)
        sampled = max(0, n * (s - 1) - work.sampled_cached)
        if work.fixed_prompts:  # one run of batches over every prompt
            a = answers_s(held_new + new, rates, work)
        else:  # the held-apart prompts and one training prompt first, then the rest (caches.py)
            first = min(new, 1)
            a = answers_s(held_new + first, rates, work) + answers_s(new - first, rates, work)
        d = answers_s(sampled, rates, work, drafter=work.drafter) if s > 1 else 0.0
        # hidden states: new answers, and cached ones whose states are not on disk yet
        seqs = max(0, work.held + n * s - work.hidden_cached)
        return a, d, hidden_s(seqs, min(seqs, work.held + n), rates, work)

    n = work.train_available
    if not work.fixed_prompts:  # the most training prompts whose answers fit their share
        while n > min(1, work.train_available) and cost(n, 1)[0] > ANSWER_SHARE * left + 1e-9:
            n -= 1
        n = max(n, min(work.train_cached, work.train_available))
    s = work.samples if can_sample else 1
    if can_sample and not work.fixed_samples:
        while s > 1 and cost(n, s)[1] > SAMPLED_SHARE * left + 1e-9:
            s -= 1
    while not (work.fixed_prompts and work.fixed_samples) and sum(cost(n, s)) > (1 - MIN_TRAIN_SHARE) * left:
        if s > 1 and not work.fixed_samples:
            s -= 1
        elif n > 1 and not work.fixed_prompts and n > work.train_cached:
            n -= 1
        else:
            break
    a, d, h = cost(n, s)
    seconds = {"start": spent_s, "answers": a, "sampled": d, "hidden": h,
               "train": max(0.0, left - a - d - h), "finish": finish_s}
    return Plan(budget_s, seconds, n, s)


FEW_PROMPTS = 8  # fewer training prompts than this: the plan line says what a longer budget buys


def longer_budget(plan: Plan, spent_s: float, rates: Rates, work: Work, finish_s: float = 0.0,
                  factors: tuple[float, ...] = (2.0, 3.0, 4.0)) -> tuple[float, int] | None:
    """Where a plan affords fewer than FEW_PROMPTS training prompts (a slow machine, a short
    budget): (minutes, training prompts) of the first longer budget (`factors` times this one)
    that affords FEW_PROMPTS, or the longest tried; None where this plan has enough, or the
    prompts are fixed, or no longer budget buys more."""
    if work.fixed_prompts or plan.train_prompts >= min(FEW_PROMPTS, work.train_available):
        return None
    best = None
    for f in factors:
        n = plan_budget(plan.budget_s * f, spent_s, rates, work, finish_s).train_prompts
        if n > plan.train_prompts:
            best = (plan.budget_s * f / 60, n)
            if n >= FEW_PROMPTS:
                break
    return best


def replan(plan: Plan, actual: dict) -> Plan:
    """The plan after the stages in `actual` (stage -> seconds it really took) ran: the time
    left goes to the stages not run yet; an overrun comes out of the next flexible stage (the
    sampled answers, then the training), an underrun goes to the training. The stages still
    sum to the budget while the fixed ones fit in it."""
    seconds = dict(plan.seconds)
    over = 0.0
    for stage, took in actual.items():
        over += took - seconds[stage]
        seconds[stage] = took
    for stage in ("sampled", "train"):
        if stage in actual:
            continue
        if over > 0:
            cut = min(over, seconds[stage])
            seconds[stage] -= cut
            over -= cut
        elif stage == "train":
            seconds[stage] -= over  # the time saved earlier
            over = 0.0
    return replace(plan, seconds=seconds)
