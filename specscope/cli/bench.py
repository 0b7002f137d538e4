"""`specscope bench`: Spec-Bench-style speed comparison of methods against plain decoding.

Thin: check every option before any model loads, run the interleaved plan behind a progress bar,
write the files, print the table. Heavy imports (torch, transformers, matplotlib) stay inside
the function so `specscope --help` stays fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from specscope.cli.options import ApiKey, Engine, TargetUrl, remote_profile
from specscope.cli.options import DraftDevice, DraftThreads
from specscope.cli.options import (Backend, Device, DraftQuant, DraftWindow, Dtype, MaxNew, Profile, Quant,
                                   RefineSteps, Seed, Temperature, TopP, Trimmed, friendly_errors)
from specscope.prompts import DEFAULT_PROMPTS_HELP, PROMPT_SETS_HELP

Methods = Annotated[Optional[list[str]], typer.Option(
    "--methods", "-m", metavar="LIST", help="Methods to compare with the ar baseline, comma-separated or repeated "
    "(default: every method the profile supports; see `specscope profiles`).")]
DraftLens = Annotated[Optional[list[str]], typer.Option(
    "--draft-len", "-k", metavar="LIST", help="Draft lengths (0-32) or 'auto' (adaptive) or 'learned' (H-RAD), comma-separated or "
    "repeated (default: the profile's).")]
VocabSizes = Annotated[Optional[list[str]], typer.Option(
    "--vocab-top-k", metavar="LIST", help="Drafter vocabulary sizes or 'full', comma-separated or repeated "
    "(needs --trimmed).")]


@friendly_errors
def bench(
    profile: Profile = None,
    prompts: Annotated[Optional[str], typer.Option(
        "--prompts", metavar="FILE|long", help="Spec-Bench JSONL ('category' and 'turns'; the first "
        "turn is used), or " + PROMPT_SETS_HELP + " " + DEFAULT_PROMPTS_HELP)] = None,
    categories: Annotated[Optional[str], typer.Option(
        "--categories", metavar="LIST", help="Comma-separated categories of the prompt file, or mt_bench "
        "(Spec-Bench's group of the eight MT-bench categories); with --prompts long, lengths: "
        "e.g. long-1k,long-8k.")] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", metavar="N", help="At most this many prompts per category.")] = None,
    split: Annotated[Optional[str], typer.Option(
        "--split", metavar="report|tuning|calibration|all", help="Which split of a prompt file that "
        "has them (the packaged set does) to measure: report by default, the prompts no command "
        "fits or selects on. A file without splits is measured whole.")] = None,
    allow_overlap: Annotated[bool, typer.Option(
        "--allow-overlap", help="Measure prompts that an artifact in use (the trimmed head, the "
        "FastMTP head) was fitted or selected on, flagged in the table and results; without it "
        "bench refuses them.")] = False,
    methods: Methods = None,
    draft_len: DraftLens = None,
    vocab_top_k: VocabSizes = None,
    trimmed: Trimmed = None,
    refine_steps: RefineSteps = None,
    draft_window: DraftWindow = None,
    target_url: TargetUrl = None,
    engine: Engine = None,
    api_key: ApiKey = None,
    draft_quant: DraftQuant = None,
    quant: Quant = None,
    backend: Backend = None,
    overlap: Annotated[bool, typer.Option(
        "--overlap", help="Run the drafter in its own worker and add an overlapped row (drafting "
        "ahead while the target verifies) after each draft/tree configuration's serial row.")] = False,
    draft_threads: DraftThreads = None,
    draft_device: DraftDevice = None,
    max_new_tokens: MaxNew = None,
    temperature: Temperature = None,
    top_p: TopP = None,
    seed: Seed = 0,
    dtype: Dtype = None,
    device: Device = None,
    repeats: Annotated[int, typer.Option("--repeats", metavar="N", help="Timed runs per prompt and configuration (results.json then gives each repeat's overall speedup too).")] = 1,
    reference: Annotated[Optional[str], typer.Option(
        "--reference", metavar="hf|llama.cpp|URL", help="'hf': add transformers' own generate rows (plain, assisted, "
        "prompt lookup) on the same models; 'llama.cpp': llama-server's plain and speculative "
        "decoding on the same GGUF files; a server's URL: its own decoding as configured; "
        "hf and one engine together: e.g. hf,llama.cpp.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help=(
        "Output directory for results.json, results.csv, runs.jsonl and the plots; created if "
        "missing, earlier results in it are replaced."))] = Path("bench-results"),
    warmup: Annotated[bool, typer.Option("--warmup/--no-warmup", help="One short untimed run per configuration first.")] = True,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG plots.")] = True,
    compare: Annotated[Optional[tuple[Path, Path]], typer.Option(
        "--compare", metavar="DIR DIR", help="Print the differences between two result directories, run nothing.")] = None,
) -> None:
    """Measure speedup, tau, acceptance, tok/s and MBSU of methods against plain decoding on
    Spec-Bench prompts (or long contexts: --prompts long); write results.json, results.csv,
    runs.jsonl and plots to --out."""
    from rich.console import Console

    if compare is not None:
        from specscope.bench.compare import render_compare

        console = Console(highlight=False)
        if not console.is_terminal:
            console.width = 200  # a pipe or a log file: room for the whole table
        render_compare(compare[0], compare[1], console)
        return
    from specscope.bench.driver import Options, run_bench

    run_bench(Options(
        profile=remote_profile(profile, target_url, engine, api_key), prompts=prompts,
        categories=categories, limit=limit, split=split,
        allow_overlap=allow_overlap, methods=methods,
        draft_len=draft_len, vocab_top_k=vocab_top_k, trimmed=trimmed, refine_steps=refine_steps,
        draft_quant=draft_quant, quant=quant, draft_window=draft_window, backend=backend,
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
        dtype=dtype, device=device, repeats=repeats, reference=reference, out=out, warmup=warmup,
        plots=plots, overlap=overlap, draft_threads=draft_threads, draft_device=draft_device))
