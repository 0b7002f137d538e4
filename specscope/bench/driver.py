"""One benchmark from options to files: validate, load, plan, run, write, print.

Every option is checked before the models load (minutes for a real pair), and the output
directory is probed then too, so a typo never costs a load and never leaves half a result.
"""
from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from specscope.auto import choice_json
from specscope.bench.costs import cost_rows, render_costs, verify_curve, weight_bytes
from specscope.core.machine import memory_bandwidth_gbs
from specscope.frontends.prefill import PrefillDisplay
from specscope.frontends.progress import make_progress
from specscope.outputs import atomic_write_text, check_output_dir, ensure_dir
from specscope.bench.grid import (BASELINE, Config, build_grid, hf_grid, overlapped_too,
                                  parse_draft_lens, parse_methods, parse_vocab_sizes)
from specscope.drafting import WORKER_METHODS, drafting_label, split_threads, with_drafting
from specscope.prompts import SPLITS, load_prompts, prompt_source
from specscope.bench.overlap import Overlap, artifacts_in_use, find_overlap, layerskip_in_use, merge, refusal
from specscope.bench.report import render_table, runs_jsonl, write_results
from specscope.bench.runner import Plan, Runner, controls_for, run_plan, warm_up
from specscope.core.errors import SpecScopeError


@dataclass
class Options:
    profile: str | None = None
    prompts: str | Path | None = None  # a file, a packaged set's name (long), None: default
    categories: str | None = None
    limit: int | None = None
    split: str | None = None  # SPLITS or "all"; None: report (files without splits: all)
    allow_overlap: bool = False
    methods: list[str] | None = None
    draft_len: list[str] | None = None
    vocab_top_k: list[str] | None = None
    trimmed: Path | None = None
    refine_steps: str | None = None  # jacobi's passes per block for every jacobi row (None: auto)
    draft_window: int | None = None  # the draft model's cache bound for every row (None: profile's)
    draft_quant: str | None = None
    quant: str | None = None
    backend: str | None = None  # torch, llama.cpp, auto (None: the profile's)
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int = 0
    dtype: str | None = None
    device: str | None = None
    repeats: int = 1
    reference: str | None = None
    # the drafter in its own worker (drafting.py): --overlap adds an overlapped row for each
    # configuration of a method that can draft ahead (its serial row goes through the worker too)
    overlap: bool = False
    draft_threads: int | None = None
    draft_device: str | None = None
    out: Path = Path("bench-results")
    warmup: bool = True
    plots: bool = True


def command_line(o: Options) -> str:
    """The options as one `specscope bench` command a reader can paste."""
    words = ["specscope", "bench"]
    for f in fields(Options):
        value = getattr(o, f.name)
        flag = "--" + f.name.replace("_", "-")
        if f.name in ("warmup", "plots"):
            if not value:
                words.append(f"--no-{f.name}")
        elif f.name in ("allow_overlap", "overlap"):
            words += [flag] if value else []
        elif isinstance(value, list):
            words += [flag, ",".join(value)] if value else []
        elif value is not None and not (f.name == "seed" and value == 0) \
                and not (f.name == "repeats" and value == 1):
            words += [flag, str(value)]
    return shlex.join(words)


class ProgressWatcher:
    """A rich progress bar over prompts x configurations, with the time left."""

    def __init__(self, progress: Progress, description: str, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task(description, total=total)

    def begin(self, description: str) -> None:
        self.progress.update(self.task, description=description)

    def end(self) -> None:
        self.progress.advance(self.task)


def make_meta(o: Options, prof, session, plan: Plan, base, prompt_file: str,
              overlap: Overlap | None = None) -> dict:
    import torch
    import transformers

    from specscope import __version__ as specscope_version
    from specscope.remote.http import redact_url

    device = str(session.target.device)
    gpu = torch.cuda.get_device_name(session.target.device) if device.startswith("cuda") else None
    return {
        "tool": "specscope bench",
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command_line(o),
        "argv": sys.argv,
        "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs"
                   + (f", {gpu}" if gpu else "") + ")",
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "gpu": gpu,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "specscope": specscope_version,
        "profile": prof.name,
        "target": redact_url(prof.target),  # a served target's address, never its credentials
        "engine": prof.engine if prof.target_url else None,
        "drafter": prof.drafter,
        "trimmed": str(o.trimmed or prof.trimmed or "") or None,
        "backend": session.profile.backend,
        "dtype": session.profile.dtype,
        "quant": session.profile.quant,  # the target measured: its own quantized plain decoding
        "draft_quant": session.profile.draft_quant,
        "device": device,
        "settings": {"temperature": base.temperature, "top_p": base.top_p,
                     "max_new_tokens": base.max_new_tokens,
                     "profile_draft_len": prof.draft_len, "repeats": plan.repeats,
                     "seed": plan.seed, "warmup": o.warmup, "draft_window": base.draft_window},
        "prompt_file": prompt_file,
        "split": split_measured(o, plan.prompts),
        "overlap": (overlap or Overlap()).as_dict(o.allow_overlap),
        "prompts": len(plan.prompts),
        "categories": dict(Counter(p.category for p in plan.prompts)),
        "configs": [c.name for c in plan.all_configs],
        "baseline": BASELINE,
        "target_bytes": weight_bytes(session.target),
        "memory_gbs": round(memory_bandwidth_gbs(), 2),
        "drafting": drafting_label(session.profile) or "in the target's process",
    }


def plan_controls(session, o: Options):
    from specscope.core.refine_steps import parse_refine_steps
    from specscope.session import make_controls

    return make_controls(session.profile, max_new_tokens=o.max_new_tokens,
                         temperature=o.temperature, top_p=o.top_p, seed=o.seed,
                         refine_steps=parse_refine_steps(o.refine_steps),
                         draft_window=o.draft_window)


def split_measured(o: Options, prompts) -> str | None:
    """The split measured: None for a file without splits."""
    if not any(p.split for p in prompts):
        return None
    return o.split or "report"


def references(o) -> list[str]:
    """--reference's comma-separated values: hf, and at most one engine (llama.cpp or a URL)."""
    return [r.strip() for r in (o.reference or "").split(",") if r.strip()]


def engine_reference(o) -> str | None:
    engines = [r for r in references(o) if r != "hf"]
    return engines[0] if len(engines) == 1 else None


def bench_drafting(prof, o: Options):
    """The profile with the bench's worker options: with --overlap the worker starts, and each
    run says itself whether it drafts ahead (its configuration's `drafting`)."""
    from dataclasses import replace

    prof = with_drafting(prof, o.overlap or None, o.draft_threads, o.draft_device)
    return replace(prof, overlap=False, draft_threads=split_threads(prof)[0]) if o.overlap else prof


def validate(o: Options):
    """Everything that can be checked without models. Returns (profile, prompts, grid axes,
    overlap): refuses prompts an artifact in use was fitted or selected on, unless
    --allow-overlap."""
    from specscope.frontends.loading import quiet_libraries
    from specscope.frontends.preflight import check_new_tokens, check_options, check_trimmed
    from specscope.profiles import load_profile, with_backend, with_quant
    from specscope.session import METHODS, make_controls

    from specscope.remote.http import is_url

    for ref in references(o):
        if ref not in ("hf", "llama.cpp") and not is_url(ref):
            raise SpecScopeError(f"unknown reference '{ref}' (hf, llama.cpp or a server's "
                                 "http://HOST:PORT)")
    if engine_reference(o) is None and len([r for r in references(o) if r != "hf"]) > 1:
        raise SpecScopeError("--reference takes one engine (llama.cpp or a URL), with hf beside it")
    if o.repeats < 1:
        raise SpecScopeError(f"--repeats must be >= 1, got {o.repeats}")
    from specscope.frontends.loading import resolve_auto

    prof, choice = resolve_auto(with_backend(with_quant(load_profile(o.profile), o.quant, o.draft_quant),
                                             o.backend), o.dtype, None, o.device)
    prof = bench_drafting(prof, o)
    if "hf" in references(o) and prof.target_url:
        raise SpecScopeError("--reference hf runs transformers on the target's weights: a served "
                             "target has none here (use --reference URL or llama.cpp)")
    methods = parse_methods(o.methods, METHODS)
    lens = parse_draft_lens(o.draft_len) or [prof.draft_len]
    sizes = parse_vocab_sizes(o.vocab_top_k) or [None]
    if any(v is not None for v in sizes) and not (o.trimmed or prof.trimmed):
        raise SpecScopeError("--vocab-top-k needs a trimmed drafter head: pass --trimmed PATH "
                             "(made by `specscope trim`)")
    for m in methods or [None]:
        check_options(prof, m, o.dtype, o.device)
    if "hf" in references(o) and prof.backend == "llama.cpp":
        raise SpecScopeError("--reference hf runs transformers on the torch models: not with "
                             "--backend llama.cpp")
    from specscope.core.refine_steps import parse_refine_steps

    if o.trimmed or prof.trimmed:
        check_trimmed(o.trimmed or prof.trimmed, prof, [v for v in sizes if v is not None])
    base = make_controls(prof, max_new_tokens=o.max_new_tokens, temperature=o.temperature,
                         top_p=o.top_p, refine_steps=parse_refine_steps(o.refine_steps),
                         draft_window=o.draft_window)
    check_new_tokens(prof, base.max_new_tokens, "--max-new-tokens")
    for k in lens:  # e.g. an unknown auto:RULE
        controls_for(base, Config(BASELINE, k)).validate()
    if o.split not in (None, "all", *SPLITS):
        raise SpecScopeError(f"--split must be {', '.join(SPLITS)} or all, got '{o.split}'")
    prompts = load_prompts(o.prompts, o.categories, o.limit,
                           split=None if o.split == "all" else o.split or "report")
    artifacts = artifacts_in_use(prof, o.trimmed, methods)
    overlap = find_overlap(prompts, artifacts)
    if overlap.flagged and not o.allow_overlap:
        raise refusal(overlap, artifacts)
    check_output_dir(o.out)
    quiet_libraries()
    return prof, prompts, methods, lens, sizes, choice, overlap


def build_plan(o: Options, session, prompts, methods, lens, sizes, err: Console,
               overlap: Overlap | None = None) -> Plan:
    available = [m for m in session.decoder.methods if m != BASELINE]
    if not methods:
        methods = available
    for m in methods:
        if m not in session.decoder.methods:
            raise SpecScopeError(f"method '{m}' is not available with profile "
                                 f"'{session.profile.name}' (available: {', '.join(session.decoder.methods)})")

    def trims_vocab(method: str) -> bool:
        return session.decoder.drafter(method).accepts_vocab_top_k

    configs = build_grid(methods, lens, sizes, trims_vocab)
    if o.overlap:
        configs = overlapped_too(configs, WORKER_METHODS)
    if any(v is not None for v in sizes) and not any(c.vocab_top_k is not None for c in configs):
        err.print("note: no benchmarked method drafts with a vocabulary; --vocab-top-k ignored")
    if "hf" in references(o):
        configs += hf_grid(methods, lens, session.profile.start_len, session.drafter_lm is not None)
    if engine_reference(o) is not None:
        from specscope.bench.engine_ref import reference_grid

        configs += reference_grid(engine_reference(o), lens, session.profile.start_len,
                                  session.drafter_lm is not None)
    kept, ids = [], []
    for p in prompts:
        x = session.encode(p.text)
        if len(x) + 1 >= session.target.max_positions:
            err.print(f"note: skipping prompt {p.id} ({p.category}): {len(x)} tokens do not fit "
                      f"the context window of {session.target.max_positions}")
            continue
        kept.append(p)
        ids.append(x)
    if not kept:
        raise SpecScopeError("no prompt fits the target's context window")
    flagged = (overlap or Overlap()).flagged
    return Plan(kept, ids, configs, o.repeats, o.seed,
                {p.id: flagged[p.id] for p in kept if p.id in flagged})


def run_bench(o: Options) -> None:
    err = Console(stderr=True)
    out = Console(highlight=False)
    if not out.is_terminal:
        out.width = 160  # a pipe or a log file: room for the whole table
    prof, prompts, methods, lens, sizes, choice, overlap = validate(o)
    if (Path(o.out) / "results.json").exists():
        err.print(f"note: {o.out} holds an earlier result; its files will be replaced")
    engine_ref = None
    if engine_reference(o) is not None:  # llama.cpp or a server: checked before any model loads
        import torch

        from specscope.bench.engine_ref import EngineReference

        engine_ref = EngineReference(prof, engine_reference(o), torch.get_num_threads())
        engine_ref.check()
    try:
        _run(o, prof, prompts, methods, lens, sizes, choice, overlap, engine_ref, err, out)
    finally:
        if engine_ref is not None:
            engine_ref.close()


def check_loaded_overlap(o: Options, session, prompts, methods, overlap: Overlap, err) -> Overlap:
    """Add the artifacts known only once the models are loaded (the layer-skip search result,
    keyed by the target's weights); refuse or flag as validate() does; say what was found."""
    found = layerskip_in_use(session, methods)
    more = find_overlap(prompts, found)
    if more.flagged and not o.allow_overlap:
        raise refusal(more, found)
    overlap = merge(overlap, more)
    for name in overlap.unchecked:
        err.print(f"note: cannot check overlap with the {name}: it records no prompt ids (made "
                  "before specscope recorded them; make it again to check)", soft_wrap=True)
    if overlap.flagged:
        n = len(overlap.flagged)
        err.print(f"[yellow]warning: {n} prompt{'s' if n > 1 else ''} measured {'were' if n > 1 else 'was'} "
                  f"used to fit or select an artifact in use (--allow-overlap): flagged '!' in the "
                  f"table, 'overlap' in results.json and runs.jsonl; their speedups flatter[/yellow]",
                  soft_wrap=True)
    return overlap


def _run(o, prof, prompts, methods, lens, sizes, choice, overlap, engine_ref, err, out) -> None:
    from specscope.frontends.loading import open_session
    from specscope.profiles import quant_label

    session = open_session(prof, None, o.dtype, o.device, o.trimmed, None, err, lines=True)
    try:
        overlap = check_loaded_overlap(o, session, prompts, methods, overlap, err)
        _measure(o, prof, session, prompts, methods, lens, sizes, choice, overlap, engine_ref,
                 err, out)
    finally:
        session.close()  # the drafter's worker, if any


def _measure(o, prof, session, prompts, methods, lens, sizes, choice, overlap, engine_ref, err,
             out) -> None:
    from specscope.profiles import quant_label

    plan = build_plan(o, session, prompts, methods, lens, sizes, err, overlap)
    base = plan_controls(session, o)
    prompt_file = str(prompt_source(o.prompts))
    meta = make_meta(o, prof, session, plan, base, prompt_file, overlap)
    meta["auto"] = choice_json(choice)  # what auto chose for this machine, and why
    err.print(f"measuring the target's verify-cost curve on {session.profile.backend} "
              "(a pass over 1, 2, 4, 8, 16 tokens)…", highlight=False)
    meta["verify_curve"] = verify_curve(session)
    runner = Runner(session, base)
    runner.engine_ref = engine_ref

    def checkpoint(records: list[dict]) -> None:  # raw runs survive a crash mid-benchmark
        atomic_write_text(ensure_dir(o.out) / "runs.jsonl", runs_jsonl(records))

    with make_progress(err, lines=True, transient=True) as progress:
        runner.on_prefill = PrefillDisplay(progress=progress).show
        if o.warmup:
            warm_up(runner, plan, ProgressWatcher(progress, "warm-up", len(plan.all_configs)))
        watch = ProgressWatcher(progress, "runs", plan.total_runs)
        records, interrupted = run_plan(runner, plan, watch, checkpoint)
    if not records:
        raise KeyboardInterrupt
    meta.update(runs=len(records), interrupted=interrupted)
    if engine_ref is not None:
        engine_ref.measure_curve()
        meta["engine_reference"] = engine_ref.describe()
    ensure_dir(o.out)
    rows = write_results(o.out, meta, records, plots=o.plots)
    # what `method: auto` chooses from next (core/last_bench.py); not a worker's runs, whose
    # baseline had only the target's share of the cores
    if not interrupted and session.worker is None:
        from specscope.core import last_bench
        from specscope.session import mtp_head

        last_bench.save(prof.name, meta["dtype"], meta["draft_quant"], rows, mtp_head(prof))
    quant = quant_label(session.profile)
    split_note = f" ({meta['split']} split)" if meta["split"] else ""
    title = (f"specscope bench: {prof.name}, {meta['dtype']}{f' ({quant})' if quant else ''} on {meta['device']}, "
             f"{len({r['prompt_id'] for r in records})} prompts{split_note}, temperature {base.temperature}, "
             f"max {base.max_new_tokens} new tokens; speedup over ar (Spec-Bench: mean tok/s ratio)")
    out.print(render_table(rows, title))
    out.print(render_costs(cost_rows(records, rows, meta["target_bytes"]), meta["memory_gbs"],
                           meta["verify_curve"]))
    if engine_ref is not None and engine_ref.curve:  # what decides whether speculation can pay there
        from specscope.bench.engine_ref import curve_note

        out.print(curve_note(engine_ref.curve, "llama.cpp's (llama-bench on the target GGUF)"))
    err.print(f"wrote {o.out}/results.json, results.csv, runs.jsonl" + (", plots (*.png)" if o.plots else ""))
    if interrupted:
        err.print(f"interrupted: kept {len(records)} finished runs of {plan.total_runs}")
        raise SystemExit(130)
