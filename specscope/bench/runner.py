"""Interleaved timed runs: for each prompt, the baseline, then every configuration.

Running the baseline and the configurations back to back on each prompt (rather than one whole
pass per configuration) makes slow drift of the machine (thermal throttling, other load) hit all
of them alike. Every run starts from empty KV caches, so no run inherits another's prefill, and
all runs are timed by the same clock around the whole generation (prefill included).

Each finished run becomes one plain record (a dict; see `record`), which is all the reports use.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol


from specscope.bench.grid import BASELINE, Config, is_auto
from specscope.bench.measured import overlap_fields
from specscope.bench.measured import Measured, sync
from specscope.prompts import Prompt
from specscope.core.controls import Controls
from specscope.core.events import Finished, Prefilling
from specscope.core.stats import Stats

WARMUP_TOKENS = 8
WARMUP_CONTEXT = 256  # prompt tokens a warm-up reads: first-call costs, not a long prefill


def reset_caches(session) -> None:
    """Every run starts from empty caches, a fresh drafter state and fresh adaptive policies."""
    session.decoder.reset()
    if session.drafter_lm is not None:
        session.drafter_lm.reset()


def controls_for(base: Controls, config: Config, max_new_tokens: int | None = None) -> Controls:
    c = replace(base, method=config.method, vocab_top_k=config.vocab_top_k,
                overlap=config.drafting == "overlapped")
    if is_auto(config.draft_len):
        c.adaptive = True  # starts from the profile's draft length; the engine adapts it
        rule = config.draft_len.partition(":")[2]
        if rule:  # auto:heuristic etc.; Controls.validate names the rules it knows
            c.adaptive_rule = rule
    elif config.draft_len is not None:
        c.draft_len = config.draft_len
        c.adaptive = False
    if max_new_tokens is not None:
        c.max_new_tokens = max_new_tokens
    return c


def run_ours(session, ids: list[int], controls: Controls,
             on_prefill: Callable[[Prefilling], None] | None = None) -> Measured:
    """One generation through specscope's loop, folded from its events; a long prompt's
    prefill progress goes to `on_prefill` (its time is the run's: shown, and timed like
    everything else)."""
    reset_caches(session)
    stats = Stats()
    summary = None
    t0 = time.perf_counter()
    for event in session.decoder.run(ids, controls):
        stats.add(event)
        if isinstance(event, Finished):
            summary = event.summary
        elif on_prefill is not None and isinstance(event, Prefilling):
            on_prefill(event)
    sync(session.target.device)
    wall = time.perf_counter() - t0
    return Measured(list(summary.token_ids), wall, summary.steps, summary.drafted, summary.accepted,
                    list(stats.pos_drafted), list(stats.pos_accepted), summary.param_ratio,
                    summary.stop_reason, summary.prefill_s, summary.draft_s, summary.verify_s,
                    summary.draft_prefill_s, requests=summary.requests, server_s=summary.server_s,
                    overlap=overlap_fields(summary))


class Runner:
    """Runs any configuration (ours or transformers') on token ids with shared base controls."""

    def __init__(self, session, base: Controls,
                 on_prefill: Callable[[Prefilling], None] | None = None) -> None:
        self.session = session
        self.base = base
        self.on_prefill = on_prefill  # shows a long prompt's prefill (our rows only)
        self.engine_ref = None  # the servers of the engine reference rows (engine_ref.py)

    def measure(self, config: Config, ids: list[int], seed: int,
                max_new_tokens: int | None = None) -> Measured:
        controls = controls_for(self.base, config, max_new_tokens)
        controls.seed = seed
        if config.kind == "hf":
            from specscope.bench.hf import run_hf

            return run_hf(self.session, ids, config, controls)
        if config.kind not in ("ours", "hf"):  # a serving engine's own decoding (engine_ref.py)
            return self.engine_ref.measure(ids, config, controls, self.session.decoder.eos_ids)
        return run_ours(self.session, ids, controls, self.on_prefill)


def backend_of(runner) -> str | None:
    """What ran specscope's models (a runner without a session, as tests build: None)."""
    return getattr(getattr(getattr(runner, "session", None), "profile", None), "backend", None)


def record(config: Config, prompt: Prompt, repeat: int, seed: int, prompt_tokens: int,
           m: Measured, overlap: list[str] | None = None, backend: str | None = None) -> dict:
    """One run. `overlap`: the artifacts in use that were fitted or selected on this prompt
    (bench --allow-overlap), else empty. `backend`: what ran specscope's models."""
    n = len(m.token_ids)
    return {
        **config.as_dict(),
        "backend": "transformers" if config.kind == "hf" else backend,
        "prompt_id": prompt.id, "category": prompt.category, "group": prompt.group,
        "split": prompt.split, "overlap": list(overlap or []),
        "repeat": repeat, "seed": seed, "prompt_tokens": prompt_tokens,
        "new_tokens": n, "wall_s": m.wall_s, "tokens_per_s": n / m.wall_s if m.wall_s > 0 else 0.0,
        "steps": m.steps, "drafted": m.drafted, "accepted": m.accepted,
        "pos_drafted": m.pos_drafted, "pos_accepted": m.pos_accepted,
        "param_ratio": m.param_ratio, "stop_reason": m.stop_reason,
        "prefill_s": m.prefill_s, "draft_s": m.draft_s, "verify_s": m.verify_s,
        "draft_prefill_s": m.draft_prefill_s,
        "server_tokens_per_s": m.server_tokens_per_s,
        "requests": m.requests, "server_s": m.server_s,
        **(m.overlap or {}),
        "token_ids": m.token_ids,
    }


@dataclass
class Plan:
    prompts: list[Prompt]
    prompt_ids: list[list[int]]  # encoded prompts, same order
    configs: list[Config]  # the grid and the hf rows; the baseline is added in front
    repeats: int = 1
    seed: int = 0
    overlap: dict[str, list[str]] = field(default_factory=dict)  # prompt id -> artifacts that used it

    @property
    def all_configs(self) -> list[Config]:
        return [Config(BASELINE)] + [c for c in self.configs if c != Config(BASELINE)]

    @property
    def total_runs(self) -> int:
        return len(self.prompts) * self.repeats * len(self.all_configs)


class Watcher(Protocol):
    """Hears about every run: before it starts (what it is) and after it ends."""

    def begin(self, description: str) -> None: ...

    def end(self) -> None: ...


class Silent:
    def begin(self, description: str) -> None:
        pass

    def end(self) -> None:
        pass


def warm_up(runner: Runner, plan: Plan, watch: Watcher = Silent()) -> None:
    """One short untimed generation per configuration: first-call costs (allocations, lazy
    initialisation, kernel selection) stay out of the timed runs. The first prompt's start
    is enough for that; a long prompt's whole prefill would cost minutes per configuration."""
    ids = plan.prompt_ids[0][:WARMUP_CONTEXT]
    for config in plan.all_configs:
        watch.begin(f"warm-up  {config.name}")
        runner.measure(config, ids, plan.seed, WARMUP_TOKENS)
        watch.end()


def run_plan(runner: Runner, plan: Plan, watch: Watcher = Silent(),
             on_prompt_done: Callable[[list[dict]], None] | None = None) -> tuple[list[dict], bool]:
    """All timed runs, interleaved per prompt. Returns (records, interrupted).

    Ctrl-C stops at once; the run in progress is dropped and every finished one is kept.
    """
    records: list[dict] = []
    try:
        for i, (prompt, ids) in enumerate(zip(plan.prompts, plan.prompt_ids)):
            seed = plan.seed + i  # the same seed for every configuration of a prompt
            for repeat in range(plan.repeats):
                for config in plan.all_configs:
                    watch.begin(f"{prompt.category} #{prompt.id}  {config.name}")
                    m = runner.measure(config, ids, seed)
                    records.append(record(config, prompt, repeat, seed, len(ids), m,
                                          plan.overlap.get(prompt.id), backend_of(runner)))
                    watch.end()
            if on_prompt_done:
                on_prompt_done(records)
    except KeyboardInterrupt:
        return records, True
    return records, False
