"""`mtp train --minutes M` plans the whole wall time from measured rates (a pure function: fixed
rates in, plan out): planned stages sum to the budget, the recipe scales with it, what is on
disk costs nothing, a stage that overruns shortens the next, a budget too short is refused."""
import math

import pytest

from specscope.train.plan import (ANSWER_SHARE, MIN_TRAIN_SHARE, STAGES, BudgetTooShort, Rates,
                                  Work, answers_s, plan_budget, replan)

RATES = Rates(prefill_tps=400.0, step_s=0.5, hidden_tps=300.0, train_tps=150.0, batch=16,
              drafter_prefill_tps=1200.0, drafter_step_s=0.2)
WORK = Work(held=16, held_cached=0, train_available=96, train_cached=0, prompt_tokens=120,
            answer_tokens=256, samples=4)


@pytest.mark.parametrize("minutes", [10, 20, 30, 60, 90])
def test_planned_stages_sum_to_the_budget_and_training_gets_its_share(minutes):
    plan = plan_budget(minutes * 60, 20.0, RATES, WORK, finish_s=10.0)
    assert set(plan.seconds) == set(STAGES)
    assert math.isclose(sum(plan.seconds.values()), minutes * 60)
    left = minutes * 60 - 30.0
    assert plan.seconds["train"] >= MIN_TRAIN_SHARE * left - 1e-6
    assert plan.seconds["answers"] <= ANSWER_SHARE * left + 1e-6 or plan.train_prompts == 1
    assert 1 <= plan.train_prompts <= 96 and 1 <= plan.samples <= 4
    assert "training" in plan.line()


def test_more_minutes_buy_more_prompts_then_more_samples():
    plans = [plan_budget(m * 60, 20.0, RATES, WORK, 10.0) for m in (10, 30, 90)]
    assert [p.train_prompts for p in plans] == sorted(p.train_prompts for p in plans)
    assert plans[0].train_prompts < plans[-1].train_prompts == 96
    assert plans[0].samples <= plans[-1].samples and plans[-1].samples > 1
    # the cost model: batches of a prompt read and 256 steps
    assert math.isclose(answers_s(17, RATES, WORK), 2 * (16 * 120 / 400 + 256 * 0.5))


def test_answers_on_disk_cost_nothing_and_are_always_used():
    fresh = plan_budget(20 * 60, 20.0, RATES, WORK)
    cached = plan_budget(20 * 60, 20.0, RATES, Work(**{**WORK.__dict__, "held_cached": 16,
                                                       "train_cached": 96, "hidden_cached": 112}))
    assert cached.train_prompts == 96 and cached.seconds["answers"] == 0.0
    assert cached.seconds["hidden"] == 0.0 and cached.seconds["train"] > fresh.seconds["train"]


def test_given_prompts_and_samples_are_kept_and_no_drafter_means_no_drafted_answers():
    fixed = plan_budget(10 * 60, 0.0, RATES, Work(**{**WORK.__dict__, "train_available": 5,
                                                     "fixed_prompts": True, "samples": 2,
                                                     "fixed_samples": True}))
    assert fixed.train_prompts == 5 and fixed.samples == 2
    alone = plan_budget(90 * 60, 0.0, Rates(**{**RATES.__dict__, "drafter_step_s": None}), WORK)
    assert alone.samples == 1 and alone.seconds["sampled"] == 0.0


def test_a_stage_that_overruns_shortens_the_next_and_an_early_one_lengthens_training():
    plan = plan_budget(30 * 60, 20.0, RATES, WORK, 10.0)
    assert plan.seconds["sampled"] > 60
    late = replan(plan, {"start": 20.0, "answers": plan.seconds["answers"] + 60})
    assert math.isclose(late.seconds["sampled"], plan.seconds["sampled"] - 60)
    assert late.seconds["train"] == plan.seconds["train"]
    assert math.isclose(sum(late.seconds.values()), 30 * 60)
    # an overrun larger than the sampled stage: the rest comes out of training
    very = replan(plan, {"answers": plan.seconds["answers"] + plan.seconds["sampled"] + 100})
    assert very.seconds["sampled"] == 0.0
    assert math.isclose(very.seconds["train"], plan.seconds["train"] - 100)
    assert math.isclose(sum(very.seconds.values()), 30 * 60)
    early = replan(plan, {"start": 20.0, "answers": plan.seconds["answers"] - 30,
                          "sampled": plan.seconds["sampled"], "hidden": plan.seconds["hidden"]})
    assert math.isclose(early.seconds["train"], plan.seconds["train"] + 30)
    assert early.end_of("train") == pytest.approx(30 * 60 - 10.0)


def test_a_budget_too_short_for_the_held_apart_prompts_is_refused_with_the_minimum():
    with pytest.raises(BudgetTooShort) as e:
        plan_budget(60, 20.0, RATES, WORK)
    assert e.value.need_s > 60 and "min on this machine" in str(e.value)
    plan_budget(e.value.need_s + 1, 20.0, RATES, WORK)  # the minimum it names is enough


def test_rates_corrected_by_what_the_answers_took_predict_it_next_time():
    """The measurement's short decoding underestimates long answers: the rates scaled by what the
    stage really took predict that time for the same answers (within the bounds of one run's
    correction, 0.5x..4x), and the other rates are kept."""
    from specscope.train.budget import corrected

    predicted = answers_s(25, RATES, WORK)
    for took, factor in ((1.7 * predicted, 1.7), (0.8 * predicted, 0.8), (10 * predicted, 4.0),
                         (0.1 * predicted, 0.5)):
        fixed = corrected(RATES, predicted, took)
        assert math.isclose(answers_s(25, fixed, WORK), factor * predicted)
        assert (fixed.hidden_tps, fixed.train_tps, fixed.drafter_step_s) == (
            RATES.hidden_tps, RATES.train_tps, RATES.drafter_step_s)
    assert corrected(RATES, 0.0, 5.0) == RATES


def test_a_plan_with_few_training_prompts_says_what_a_longer_budget_buys():
    # a slow machine (the rates measured on a 2-core AVX2 CPU in float32 on 2026-12-08: 16-row
    # decoding steps of 1.9 s): 30 minutes after 7 of loading afford a few training prompts; the plan
    # names a budget that affords more
    from specscope.train.plan import FEW_PROMPTS, longer_budget

    slow = Rates(prefill_tps=35.0, step_s=1.92, hidden_tps=28.7, train_tps=34.2, batch=16,
                 drafter_prefill_tps=124.0, drafter_step_s=0.69)
    work = Work(**{**WORK.__dict__, "held": 8, "prompt_tokens": 179})  # the default --held 4, twice
    plan = plan_budget(30 * 60, 420.0, slow, work, finish_s=30.0)
    assert plan.train_prompts < FEW_PROMPTS
    minutes, n = longer_budget(plan, 420.0, slow, work, 30.0)
    assert minutes in (60, 90, 120) and n > plan.train_prompts
    assert n == plan_budget(minutes * 60, 420.0, slow, work, 30.0).train_prompts
    fast = plan_budget(30 * 60, 20.0, RATES, WORK, finish_s=10.0)  # enough prompts: nothing said
    assert fast.train_prompts >= FEW_PROMPTS and longer_budget(fast, 20.0, RATES, WORK, 10.0) is None
    fixed = Work(**{**work.__dict__, "fixed_prompts": True})  # --limit given: the user's choice
    assert longer_budget(plan_budget(30 * 60, 420.0, slow, fixed, 30.0), 420.0, slow, fixed, 30.0) is None
