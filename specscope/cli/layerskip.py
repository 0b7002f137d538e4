"""`specscope layerskip-search`: find which target layers Draft & Verify should skip, cache it."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from specscope.cli.options import Dtype, Profile, friendly_errors
from specscope.prompts import DEFAULT_PROMPTS_HELP


@friendly_errors
def layerskip_search(
    profile: Profile = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", metavar="FILE", help="Calibration prompts (Spec-Bench JSONL or text, one a line; the calibration split of a file that has splits, as the default has). " + DEFAULT_PROMPTS_HELP)] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="How many calibration prompts (taken one category at a time).")] = 4,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the search; the same seed gives the same layers.")] = 0,
    budget: Annotated[int, typer.Option("--budget", metavar="N", help="Skip sets to evaluate.")] = 24,
    new_tokens: Annotated[int, typer.Option("--new-tokens", metavar="N", help="Target tokens generated per calibration prompt.")] = 32,
    dtype: Dtype = None,
) -> None:
    """Draft & Verify: search the layers to skip when the target drafts for itself; the result is
    cached (layerskip/ in $SPECSCOPE_CACHE, else ~/.cache/specscope) for `--method layerskip`."""
    from rich.console import Console

    from specscope.core.drafters.layerskip import decoder_layers, default_skip
    from specscope.core.embedded import cache_dir
    from specscope.core.errors import SpecScopeError
    from specscope.core.layerskip_search import calibrate, save_result, search
    from specscope.frontends.loading import open_session
    from specscope.frontends.preflight import check_new_tokens, check_options
    from specscope.frontends.progress import make_progress
    from specscope.outputs import check_output_dir
    from specscope.profiles import load_profile
    from specscope.prompts import has_splits, load_prompts, prompt_source, used_record

    if limit < 1 or budget < 1 or new_tokens < 2:
        raise SpecScopeError("--limit and --budget must be >= 1, --new-tokens >= 2")
    prof = load_profile(profile)
    check_options(prof, "layerskip", dtype, None)
    check_new_tokens(prof, new_tokens, "--new-tokens")
    # the packaged set's calibration split (a file without splits: all of it)
    chosen = _round_robin(load_prompts(prompts, split="calibration"), limit)
    check_output_dir(cache_dir() / "layerskip", "the layer-skip cache")
    console = Console(stderr=True)
    session = open_session(prof, method="layerskip", dtype=dtype, console=console, lines=True)
    model = session.target.model
    decoder_layers(model)  # fails early, with one line, for a model we cannot skip layers of
    ids = [session.encode(p.text) for p in chosen]

    with make_progress(console, lines=True, transient=True) as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: float, total: float | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        calib = calibrate(model, ids, new_tokens, session.decoder.eos_ids, report)
        report("calibrating: the target continues each prompt", len(ids), len(ids))
        result = search(model, calib, seed=seed, budget=budget, progress=report)
    result.used_prompts = used_record(chosen, prompt_source(prompts),
                                      "calibration" if has_splits(chosen) else None)
    path = save_result(model, result)

    out = Console(highlight=False)
    n = result.n_layers
    out.print(f"[bold]layer skip[/bold] for {prof.target} ({n} layers), seed {seed}, "
              f"{result.evaluations} sets tried on {len(ids)} prompts")
    out.print(f"  best: skip {len(result.skip)} layers {result.skip}")
    out.print(f"        score {result.score:.3f} (expected tokens per target pass of cost), "
              f"greedy tau {result.tau:.2f} at draft length {result.draft_len}")
    out.print(f"  default (skip {default_skip(n)}): score {result.default_score:.3f}")
    if result.score < 1:
        out.print("  note: a score below 1 means drafting with these layers costs more than it saves "
                  "(for a small target the kept layers and the LM head are most of the weights)")
    out.print(f"  wrote {path}")
    out.print("  `--method layerskip` now uses it for this model")


def _round_robin(prompts, limit: int):
    """Up to `limit` prompts, one category at a time, so calibration sees every kind of text."""
    groups: dict[str, list] = {}
    for p in prompts:
        groups.setdefault(p.category, []).append(p)
    chosen, queues = [], [list(g) for g in groups.values()]
    while len(chosen) < limit and any(queues):
        for q in queues:
            if q and len(chosen) < limit:
                chosen.append(q.pop(0))
    return chosen
