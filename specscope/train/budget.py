"""`mtp train --minutes M` as one budget: the recipe's defaults, the rates (cached, or measured
on the loaded pair), what is on disk already, and the plan (train/plan.py) the run then follows.

The recipe is the one that measured best in earlier sessions (docs/commands.md, `specscope mtp
train`, says which numbers chose it): every calibration prompt the budget affords, 256-token
greedy answers in batches of 16, then up to RECIPE_SAMPLES - 1 more answers a training prompt
sampled by the drafter at temperature 0.7, a learning rate of 1.5e-4. The planner scales the prompts and samples to the
budget; an option the user gives is kept as given.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from specscope.core.errors import SpecScopeError
from specscope.train.caches import answer_key, ids_digest, read_answers
from specscope.train.events import Beat, Note, OnEvent
from specscope.train.plan import (DEFAULT_MINUTES, RECIPE, RECIPE_SAMPLES, BudgetTooShort, Plan, Rates,
                                  Work, longer_budget, plan_budget)


RATES_BEAT_S = 20.0  # a line at least this often while the rates are measured


def spread(pairs: list) -> list:
    """(Prompt, ids) pairs in turn by category (one of each, then the next of each...), so the
    first n cover every category: a plan that affords n prompts takes a spread of them."""
    by: dict[str, list] = {}
    for pair in pairs:
        by.setdefault(pair[0].category, []).append(pair)
    out, i = [], 0
    while len(out) < len(pairs):
        out += [group[i] for group in by.values() if i < len(group)]
        i += 1
    return out


def rates_for(prof, model, dtype: str, batch: int, temperature: float, prompts: list[list[int]],
              pad: int, want_drafter: bool, loading, on_event: OnEvent):
    """(Rates, the drafter if it was loaded to measure it): from the cache, else measured now
    (six decoding steps, one teacher-forced pass, two training steps: about a minute) and cached."""
    from specscope.core.models import load_causal_lm
    from specscope.train.rates import load_rates, measure_rates, rates_path, save_rates

    drafter_name = prof.drafter if want_drafter else None
    path = rates_path([prof.target, drafter_name, dtype, prof.device, batch])
    rates = load_rates(path)
    if rates is not None:
        return rates, None
    drafter = None
    if drafter_name:
        with loading() as progress:
            drafter = load_causal_lm(drafter_name, dtype, prof.device, progress)
    on_event(Note("measuring this machine's rates for the plan (once; cached)"))
    t0 = time.perf_counter()
    # a line now and then: one batch's prompt read can take a minute on a CPU
    with Beat(lambda: on_event(Note(f"  measuring the rates: {time.perf_counter() - t0:.0f} s")),
              every=RATES_BEAT_S):
        rates = measure_rates(model, drafter, prompts, pad, batch, temperature, dtype)
    save_rates(path, rates)
    return rates, drafter


def corrected(rates: Rates, predicted_s: float, took_s: float) -> Rates:
    """The target's answer rates scaled by what a stage really took against what they predicted
    (the measurement's few decoding steps, at a short context, underestimate a 256-token
    answer's): a factor within 0.5..4 per run, so a few runs converge and one odd run cannot
    throw the plan far off."""
    if predicted_s <= 0 or took_s <= 0:
        return rates
    f = min(4.0, max(0.5, took_s / predicted_s))
    return replace(rates, step_s=rates.step_s * f, prefill_tps=rates.prefill_tps / f)


def save_corrected(prof, dtype: str, batch: int, want_drafter: bool, rates: Rates,
                   predicted_s: float, took_s: float) -> None:
    """Keep corrected() rates where rates_for() reads them: the next plan uses them."""
    from specscope.train.rates import rates_path, save_rates

    drafter_name = prof.drafter if want_drafter else None
    save_rates(rates_path([prof.target, drafter_name, dtype, prof.device, batch]),
               corrected(rates, predicted_s, took_s))


def make_plan(o, rates: Rates, t_launch: float, held_ids: list[list[int]], train_ids: list[list[int]],
              data_file: Path, writer_file: Path | None, hidden_dir: Path, sampled_by: str) -> Plan:
    """The plan of this run from the rates and what is on disk already."""
    done = read_answers(data_file)
    sampled = read_answers(writer_file) if writer_file is not None else {}
    samples = o.samples or RECIPE_SAMPLES

    def has_hidden(ids: list[int]) -> bool:
        return (hidden_dir / f"{ids_digest(ids, 24)}.safetensors").is_file()

    cached = [p for p in train_ids if answer_key(p) in done]
    n_sampled, n_hidden = 0, 0
    for p in held_ids + train_ids:
        if answer_key(p) in done:
            n_hidden += has_hidden(p + done[answer_key(p)])
    for p in cached:
        for s in range(1, samples):
            key = answer_key(p, s, o.temperature)
            if key in sampled:
                n_sampled += 1
                n_hidden += has_hidden(p + sampled[key])
    everything = held_ids + train_ids
    prompt_tokens = sum(map(len, everything)) / max(len(everything), 1)
    work = Work(held=len(held_ids), held_cached=sum(answer_key(p) in done for p in held_ids),
                train_available=len(train_ids), train_cached=len(cached),
                prompt_tokens=prompt_tokens, answer_tokens=o.max_new_tokens, samples=samples,
                sampled_cached=n_sampled, hidden_cached=n_hidden,
                fixed_prompts=o.limit is not None, fixed_samples=o.samples is not None,
                drafter=sampled_by == "drafter")
    # the end: the start's evaluation of both inits on the selection prompts and the estimate,
    # forward passes only (about a third of a training step's cost a position)
    evaluated = 1.5 * len(held_ids) * (prompt_tokens + o.max_new_tokens)
    finish_s = 5.0 + evaluated / (3 * rates.train_tps)
    spent = time.perf_counter() - t_launch
    try:
        plan = plan_budget(o.minutes * 60, spent, rates, work, finish_s)
        return replace(plan, longer=longer_budget(plan, spent, rates, work, finish_s))
    except BudgetTooShort as e:
        raise SpecScopeError(f"--minutes {o.minutes:g} is too short on this machine: the "
                             f"held-apart prompts' answers and hidden states alone need about "
                             f"{e.need_s / 60:.1f} min (loading and measuring took {spent:.0f} s); "
                             f"give --minutes {int(e.need_s // 60) + 1} or more") from None


def plan_note(plan: Plan, o) -> Note:
    more = ""
    if plan.longer is not None:  # a slow machine or a short budget: say what more time buys
        minutes, n = plan.longer
        more = (f"; few training prompts fit in {o.minutes:g} min on this machine: --minutes "
                f"{minutes:g} would train on {n} (or run the same command again: it goes on)")
    prompts = "prompt" if plan.train_prompts == 1 else "prompts"
    return Note(f"plan for {o.minutes:g} min: {plan.line()} ({plan.train_prompts} training {prompts}"
                f"{f' x {plan.samples} answers' if plan.samples > 1 else ''}){more}")


def cached_rates(prof) -> Rates | None:
    """The rates measured for this profile with the recipe's batch, if any run measured them
    (its dtype: the profile's, or any measured where it says auto)."""
    from specscope.train.rates import load_rates, rates_path

    drafter = prof.drafter  # the recipe's sampled answers are the drafter's where there is one
    dtypes = [prof.dtype] if prof.dtype != "auto" else ["bfloat16", "float32", "float16"]
    for dtype in dtypes:
        rates = load_rates(rates_path([prof.target, drafter, dtype, prof.device, RECIPE["batch"]]))
        if rates is not None:
            return rates
    return None


def default_plan(prof, minutes: float = DEFAULT_MINUTES) -> Plan | None:
    """What `mtp train` with the defaults would plan on this machine, from cached rates (None
    before any run measured them): the packaged calibration prompts, held-apart tuning prompts,
    nothing on disk, loading not counted."""
    from specscope.train import DEFAULT_HELD

    rates = cached_rates(prof)
    if rates is None or not rates.prompt_tokens:
        return None
    work = Work(held=2 * DEFAULT_HELD, held_cached=0, train_available=96, train_cached=0,
                prompt_tokens=rates.prompt_tokens, answer_tokens=RECIPE["max_new_tokens"],
                samples=RECIPE_SAMPLES if prof.drafter else 1, drafter=bool(prof.drafter))
    try:
        return plan_budget(minutes * 60, 0.0, rates, work)
    except BudgetTooShort:
        return None


def train_command(prof) -> str:
    """The command that makes the profile's head, and what it takes here, in one phrase."""
    plan = default_plan(prof)
    here = f" (the plan on this machine: {plan.line()})" if plan is not None else ""
    return (f"`specscope mtp train --profile {prof.name}` makes one in {DEFAULT_MINUTES:g} min "
            f"of wall time{here}; --minutes M for another budget")
