"""The optimisation: AdamW over the head's weights, one sequence a step, within a time or token
budget; the learning-rate schedule; keep-best; checkpoints; the resume state (train/state.py).

Learning rate: a short warm-up, then a cosine from `lr` down to a tenth of it over the budget
(the fraction of the time or of the tokens spent, whichever is further along). The schedule's
position (steps, tokens and seconds spent in it, and its budget) is part of the resume state: a
resumed run that was interrupted continues the same schedule to the end of the same budget, and
one whose schedule had ended starts a new one (the optimizer's moments carry on either way).
"""
from __future__ import annotations

import math
import random
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

from specscope.core.mtp_train import evaluate, sequence_loss
from specscope.train.caches import ids_digest
from specscope.train.events import Beat, Ended, Note, OnEvent, Progress, Started, ignore

EVAL_EVERY_S = 90.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
WARMUP_STEPS = 10


def learning_rate(lr: float, step: int, frac: float) -> float:
    """The rate of the schedule's step `step` (0-based) at `frac` of its budget."""
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    return lr * warm * (0.1 + 0.45 * (1 + math.cos(math.pi * frac)))


@contextmanager
def deferred_interrupt():
    """Ctrl-C (or SIGTERM) inside the block is raised at its end, not in its middle: an
    optimizer step and the counters that say it happened are one (a resume state never holds
    half a step)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    old = {sig: signal.signal(sig, lambda *a: caught.append(a)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


def data_key(train_set) -> str:
    """What a resumed data order must belong to: the training sequences, in their order."""
    return ids_digest([s.ids for s in train_set])


def train_loop(head, embed, weight, rows, train_set, held_out, depth: int, beta: float, lr: float,
               minutes: float, max_tokens: int | None, amp, seed: int, checkpoint,
               on_event: OnEvent = ignore, labels: str = "target", before: dict | None = None,
               keep: str = "best", resume: dict | None = None,
               save_state: Callable[[dict], None] | None = None,
               stop_at: float | None = None) -> tuple[dict, bool]:
    """Train until the time or token budget is spent; evaluate on the held-apart samples every
    EVAL_EVERY_S seconds; Ctrl-C stops (the result says it was interrupted).

    keep="best": the head ends with the weights that scored best on the held-apart samples
    (score: the sum of the greedy chain acceptances at steps 1..depth, the tokens a chain of
    `depth` adds beyond the target's own), counting the weights it started with; checkpoint()
    is called only when the score improves, so the artifact is always the best so far. A
    small training set overfits (training loss far below the held-apart one), and the last
    weights need not be the best. keep="last": the last weights, checkpointed at every
    evaluation. The result's held-apart numbers are those of the kept weights; "last" holds
    the last weights' when they differ.
    `before`: a resumed head's totals (steps, tokens, seconds); the results count them in.
    `resume`: a resume state (train/state.py) of the run this one continues: its float32
    weights, optimizer, schedule, data order and best weights so far replace the head's.
    `save_state(state)`: called with the resume state at every checkpoint and at the end
    (before the kept weights are loaded), interrupted or not.
    `stop_at` (a time.perf_counter() value): the run's wall-time budget ends there; a resumed
    schedule whose own budget runs further stops there unfinished (the next run continues it)."""
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    before = before or {}
    key = data_key(train_set)
    sched = {"steps": 0, "tokens": 0, "seconds": 0.0, "lr": lr,
             "budget_s": minutes * 60, "budget_tokens": max_tokens, "finished": False}
    order: list[int] = []
    at = 0  # the next sample of `order`
    ema = None
    best: dict = {"score": -math.inf}
    if resume is not None:
        head.load_state_dict(resume["weights"])
        opt.load_state_dict(resume["optimizer"])
        if not resume["schedule"]["finished"]:
            sched = dict(resume["schedule"])
            on_event(Note(f"continuing the interrupted run's schedule: learning rate {sched['lr']:g}, "
                          f"{sched['steps']} steps into its budget ({_budget(sched)})"))
        data = resume["data"]
        rng.setstate(data["rng"])
        if data["key"] == key:
            order, at = list(data["order"]), data["at"]
        ema = resume.get("ema")
        if keep == "last" or resume["best"].get("weights") is not None:  # (else: kept by "last")
            best = dict(resume["best"])
    lr = sched["lr"]
    state = {"steps": 0, "tokens": 0, "train_loss": float("nan") if ema is None else ema,
             "held_loss": float("nan"), "held_acceptance": [0.0] * depth, "seconds": 0.0}
    t0 = last_eval = time.perf_counter()
    evaluations = [0]  # this run's evaluations so far (a front end plots each one's acceptance)

    def over() -> bool:
        return used() >= 1.0 or (stop_at is not None and time.perf_counter() >= stop_at)

    def used() -> float:
        frac = (sched["seconds"] + time.perf_counter() - t0) / sched["budget_s"]
        if sched["budget_tokens"]:
            frac = max(frac, sched["tokens"] / sched["budget_tokens"])
        return min(frac, 1.0)

    def step_now() -> int:
        return before.get("steps", 0) + state["steps"]

    def show() -> None:
        on_event(Progress("train", 100 * used(), {
            "steps": state["steps"], "tokens": state["tokens"], "loss": ema, "acceptance": list(state["held_acceptance"]),
            "evaluations": evaluations[0], "best": (best["score"], best["step"]) if keep == "best" and "step" in best else None}))

    beat = Beat(show)

    def held() -> bool:
        """Evaluate; with keep="best", remember the weights when they beat the best so far.
        True when the current weights are the ones to keep."""
        with amp:
            state["held_loss"], state["held_acceptance"] = evaluate(
                head, embed, weight, rows, held_out, depth, beta, labels, tick=beat)
        evaluations[0] += 1
        score = sum(state["held_acceptance"])
        if keep == "last" or score > best["score"]:
            best.update(score=score, step=step_now(), loss=state["held_loss"],
                        acceptance=list(state["held_acceptance"]),
                        weights={k: v.detach().clone() for k, v in head.state_dict().items()}
                        if keep == "best" else None)
            return True
        return False

    def totals() -> dict:
        """This run's state with a resumed head's steps, tokens and seconds added."""
        out = {**state, "seconds": round(time.perf_counter() - t0, 1)}
        for name in ("steps", "tokens", "seconds"):
            out[name] = round(out[name] + before.get(name, 0), 1)
        return out

    def kept() -> dict:
        """totals(), with the held-apart numbers of the weights kept; the last weights' numbers
        under "last" when those are not the ones kept."""
        out = totals()
        if "step" not in best:  # stopped before the first evaluation
            return out
        if keep == "best" and best["step"] != step_now():
            out["last"] = {"held_loss": out["held_loss"], "held_acceptance": out["held_acceptance"]}
            out["held_loss"], out["held_acceptance"] = best["loss"], best["acceptance"]
        out["kept_step"] = best["step"]
        return out

    def resume_state() -> dict:
        return {"weights": {k: v.detach().clone() for k, v in head.state_dict().items()},
                "optimizer": opt.state_dict(),
                "schedule": {**sched, "seconds": sched["seconds"] + time.perf_counter() - t0,
                             "finished": used() >= 1.0},
                "data": {"key": key, "rng": rng.getstate(), "order": list(order), "at": at},
                "ema": ema, "best": {k: v for k, v in best.items()}}

    def save(result: dict | None = None) -> None:
        if result is not None:
            checkpoint(result)
        if save_state is not None:
            save_state(resume_state())

    interrupted = False
    try:  # (a stop from its first line on is caught: the run saves what it has)
        on_event(Started("train", "training", 100, 100 * used(),
                         {"steps": 0, "tokens": 0, "loss": ema, "acceptance": None, "best": None}))
        held()
        beat(force=True)  # the starting weights' numbers
        while not over():
            if at >= len(order):
                order, at = list(range(len(train_set))), 0
                rng.shuffle(order)
            while at < len(order):
                frac = used()
                if over():
                    break
                for g in opt.param_groups:
                    g["lr"] = learning_rate(lr, sched["steps"], frac)
                with amp:
                    loss, st = sequence_loss(head, embed, weight, rows, train_set[order[at]], depth,
                                             beta, labels)
                if loss is None:
                    at += 1
                    continue
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                with deferred_interrupt():
                    opt.step()
                    at += 1
                    state["steps"] += 1
                    state["tokens"] += st.tokens
                    sched["steps"] += 1
                    sched["tokens"] += st.tokens
                ema = st.loss if ema is None else 0.9 * ema + 0.1 * st.loss
                state["train_loss"] = ema
                if time.perf_counter() - last_eval > EVAL_EVERY_S:
                    if held():
                        save(kept())
                    last_eval = time.perf_counter()
                beat(force=True)
        held()
        beat(force=True)  # the last evaluation's numbers go out too
    except KeyboardInterrupt:
        interrupted = True
    finally:
        on_event(Ended("train"))
    result = kept()
    save()
    if best.get("weights") is not None:  # (None: keep="last", or stopped before any evaluation)
        head.load_state_dict(best["weights"])
    return result, interrupted


def _budget(sched: dict) -> str:
    parts = [f"{sched['budget_s'] / 60:g} min"] if math.isfinite(sched["budget_s"]) else []
    if sched["budget_tokens"]:
        parts.append(f"{sched['budget_tokens']} tokens")
    return ", ".join(parts) or "none"
