"""`specscope trim`: calibrate, rank tokens, write a trimmed drafter head, report."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from specscope.cli.options import Dtype, Profile, friendly_errors
from specscope.prompts import DEFAULT_PROMPTS_HELP


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


OUT_HELP = ("Where to write the artifact (.safetensors). Default: trimmed/PROFILE-topK.safetensors "
            "in the cache ($SPECSCOPE_CACHE, else ~/.cache/specscope).")


def default_out(profile_name: str, top_k: int) -> Path:
    from specscope.core.embedded import cache_dir

    return cache_dir() / "trimmed" / f"{profile_name}-top{top_k}.safetensors"


def validate(top_k: int, profile: str | None, prompts: Path | None, limit: int | None, source: str,
             max_new_tokens: int, out: Path | None, dtype: str | None, batch_size: int = 8):
    """Every option, before any model loads. Returns (profile, prompts, output path)."""
    from specscope.core.errors import SpecScopeError
    from specscope.frontends.preflight import check_drafter_vocab, check_new_tokens, check_options
    from specscope.outputs import check_output_file
    from specscope.profiles import load_profile, with_quant
    from specscope.prompts import load_prompts

    if top_k < 1:
        raise SpecScopeError(f"--top-k must be a positive number of tokens, got {top_k}")
    if source not in ("generate", "corpus"):
        raise SpecScopeError(f"--source must be 'generate' or 'corpus', got '{source}'")
    if limit is not None and limit < 1:
        raise SpecScopeError(f"--limit must be >= 1, got {limit}")
    if max_new_tokens < 1:
        raise SpecScopeError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if batch_size < 1:
        raise SpecScopeError(f"--batch-size must be >= 1, got {batch_size}")
    prof = with_quant(load_profile(profile), "none", "none")  # calibrate and fingerprint the originals
    if not prof.drafter:
        raise SpecScopeError(f"profile '{prof.name}' has no drafter to trim")
    check_options(prof, None, dtype, None)
    check_drafter_vocab(prof, top_k)
    if source == "generate":
        check_new_tokens(prof, max_new_tokens, "--max-new-tokens")
    # the packaged set's calibration split (a file without splits: all of it, from the end)
    chosen = load_prompts(prompts, None, limit, from_end=True, split="calibration")
    out = check_output_file(out or default_out(prof.name, top_k), "--out")
    return prof, chosen, out


@friendly_errors
def trim(
    top_k: Annotated[int, typer.Option("--top-k", metavar="K", help="Keep this many drafter vocabulary rows.")],
    profile: Profile = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", metavar="FILE", help="Calibration prompts (Spec-Bench JSONL or text, one a line). " + DEFAULT_PROMPTS_HELP)] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", metavar="N", help="Prompts per category, from the calibration split of a file that has splits (the packaged set does), taken from the end of each category; the artifact records their ids and `bench` refuses to measure them.")] = 4,
    source: Annotated[str, typer.Option("--source", metavar="generate|corpus", help="generate: count the target's answers; corpus: count the texts themselves.")] = "generate",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n", metavar="N", help="Answer length per calibration prompt.")] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N", help="Calibration answers generated together (1: one at a time, drafted).")] = 8,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="FILE", help=OUT_HELP)] = None,
    dtype: Dtype = None,
) -> None:
    """VocabTrim: shrink the drafter's LM head to the target's most frequent tokens."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from specscope.core.errors import SpecScopeError
    from specscope.core.vocab import build_trimmed
    from specscope.frontends.loading import open_session
    from specscope.frontends.progress import AmountColumn, EtaColumn, description, make_progress
    from specscope.prompts import has_splits, prompt_source, used_record
    from specscope.trim import count_corpus, count_generated

    prof, chosen, out = validate(top_k, profile, prompts, limit, source, max_new_tokens, out, dtype,
                                batch_size)
    console = Console(stderr=True)
    session = open_session(prof, dtype=dtype, console=console, lines=True)
    vocab_size = session.drafter_lm.vocab_size
    if top_k > vocab_size:  # the config said otherwise, or could not be read before loading
        raise SpecScopeError(f"--top-k {top_k} is larger than the drafter's vocabulary ({vocab_size} tokens)")

    fits = [p for p in chosen if len(session.encode(p.text)) + max_new_tokens < session.target.max_positions]
    if len(fits) < len(chosen):  # as bench does: a long prompt must not end calibration half way
        console.print(f"note: skipping {len(chosen) - len(fits)} prompts that do not fit the context "
                      f"window of {session.target.max_positions} with {max_new_tokens} new tokens")
    if not fits:
        raise SpecScopeError("no calibration prompt fits the target's context window")
    chosen = fits

    columns = [description(24), BarColumn(bar_width=12), AmountColumn(),
               TextColumn("{task.fields[tokens]:,} tokens"), TimeElapsedColumn(), EtaColumn()]
    t0 = time.perf_counter()
    batched = source == "generate" and batch_size > 1
    # Batched: the bar counts decoding steps (max_new_tokens a batch; a batch that stops early
    # jumps to its end), so the time left moves during a batch, not only between batches.
    total = -(-len(chosen) // batch_size) * max_new_tokens if batched else len(chosen)
    with make_progress(console, columns, lines=True) as bar:
        task = bar.add_task(f"calibrating ({source})", total=total, tokens=0)

        def on_prompt(done: int, tokens: int) -> None:
            finished = -(-done // batch_size) * max_new_tokens if batched else done
            bar.update(task, completed=finished, tokens=tokens)

        if source == "generate":
            counts = count_generated(session, chosen, max_new_tokens, on_prompt, batch_size,
                                     on_step=lambda n: bar.advance(task, n))
        else:
            counts = count_corpus(session.tokenizer, chosen, on_prompt)
    split = "calibration" if has_splits(chosen) else None
    calibration = {"source": source, "prompts": str(prompts or "default"), "split": split,
                   "n_prompts": len(chosen), "prompt_ids": [p.id for p in chosen],
                   "limit_per_category": limit, "max_new_tokens": max_new_tokens,
                   "batch_size": batch_size,
                   "dtype": session.profile.dtype, "seconds": round(time.perf_counter() - t0, 1)}
    vocab = build_trimmed(counts, top_k, session.drafter_lm, session.target, session.tokenizer,
                          prof.name, prof.drafter, prof.target, calibration)
    # what bench checks its prompts against (bench/overlap.py)
    vocab.meta["used_prompts"] = used_record(chosen, prompt_source(prompts), split)
    vocab.save(out)

    lm = session.drafter_lm
    hidden = lm.hidden_size
    bytes_per = lm.head.weight.element_size()
    target_read = session.target.read_params()
    r_before = lm.read_params() / target_read
    r_after = lm.read_params(top_k) / target_read
    report = Console()
    report.print(f"[bold]VocabTrim[/bold] K = {top_k} of {vocab_size} tokens")
    report.print(f"  calibration: {len(chosen)} prompts{f' ({split} split)' if split else ''}, "
                 f"{sum(counts.values())} tokens ({len(counts)} distinct), source {source}; "
                 f"their ids are recorded (bench refuses to measure them)")
    report.print(f"  coverage: {vocab.meta['coverage']:.2%} of calibration tokens are in the kept set")
    report.print(f"  drafter head: {vocab_size * hidden:,} -> {top_k * hidden:,} parameters "
                 f"({_fmt_bytes(vocab_size * hidden * bytes_per)} -> {_fmt_bytes(top_k * hidden * bytes_per)}"
                 f" in {session.profile.dtype})")
    report.print(f"  drafter/target ratio r: {r_before:.3f} -> {r_after:.3f}")
    report.print(f"  wrote {out}")
    report.print(f"  use it: specscope generate \"...\" --trimmed {out}  (and --vocab-top-k K <= {vocab_size})")
