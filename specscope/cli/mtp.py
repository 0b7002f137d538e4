"""`specscope mtp train`: self-distil the target, train FastMTP's head, write its artifact.

1. The target's greedy answers to calibration prompts, in left-padded batches, cached on disk
   after every batch (an interrupted run resumes where it stopped).
2. The target's hidden states over prompt + answer (teacher forcing), and over --corpus text
   (more training data at the cost of one forward pass: no answers are generated for it).
3. Training within a budget (--minutes / --tokens), evaluated on held-apart prompts for
   selection (--keep best, --init auto) and, once at the end, on other held-out prompts for the
   estimate of greedy acceptance at draft steps 1..depth; a checkpoint at every evaluation, and
   on Ctrl-C.

Prompts: the packaged set's calibration split is trained on, its tuning split gives the selection
and the estimate prompts (--held each, disjoint); a file without splits gives all three, the
held-apart ones spread over it. The artifact records every prompt it was trained or selected on
(`used_prompts`, with --corpus's Spec-Bench prompts and a --trimmed ranking's), which `bench`
refuses to measure.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from specscope.cli.options import Dtype, Profile, friendly_errors
from specscope.train import DEFAULT_HELD, DEFAULT_VOCAB_K
from specscope.train.plan import DEFAULT_MINUTES, RECIPE, RECIPE_SAMPLES

mtp_app = typer.Typer(help="FastMTP: train a multi-token-prediction head on the target's own output.",
                      no_args_is_help=True, rich_markup_mode=None)


@mtp_app.command("train")
@friendly_errors
def train(
    profile: Profile = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", metavar="FILE", help="Calibration prompts (Spec-Bench JSONL or text, one a line). Default: the packaged set, trained on its calibration split, selected and estimated on its tuning split.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", metavar="N", help="Training prompts per category, from the end of each (the calibration split of a file that has splits). Default: as many as the budget affords, a spread over the categories.")] = None,
    keep_apart: Annotated[Optional[int], typer.Option("--keep-apart", metavar="N", help="A file without splits: never train on the first this many prompts of a category (what `bench --limit` measures there). Default 0.")] = None,
    held: Annotated[int, typer.Option("--held", metavar="N", help="Prompts held apart to select on (--keep best, --init auto), and as many others for the held-out estimate (from the tuning split of a file that has splits).")] = DEFAULT_HELD,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", metavar="N", help="Length of the target's answers.")] = RECIPE["max_new_tokens"],
    max_prompt_tokens: Annotated[int, typer.Option("--max-prompt-tokens", metavar="N", help="Skip longer prompts.")] = 768,
    batch: Annotated[int, typer.Option("--batch", metavar="N", help="Prompts per self-distillation batch.")] = RECIPE["batch"],
    samples: Annotated[Optional[int], typer.Option("--samples", metavar="N", help=f"Answers per training prompt: the greedy one, and the rest sampled at --temperature (more text from the same prompts; by the drafter, or --sampled-by target). Default: as many as the budget affords, up to {RECIPE_SAMPLES}.")] = None,
    temperature: Annotated[float, typer.Option("--temperature", metavar="T", help="Temperature of the sampled answers (--samples > 1).")] = RECIPE["temperature"],
    sampled_by: Annotated[Optional[str], typer.Option("--sampled-by", metavar="target|drafter", help="Who writes the sampled answers: the target, or the profile's drafter (a smaller model of the same family: more text for the time; its text is labelled by the target's own distributions, like --corpus, so it needs --labels target). Default: the drafter where the profile has one.")] = None,
    minutes: Annotated[float, typer.Option("--minutes", metavar="MIN", help="The whole run's wall time, from launch to the artifact: answers, hidden states and training share it, planned from this machine's measured rates (the plan is printed first). Run the command again to go on (it adds this much time).")] = DEFAULT_MINUTES,
    tokens: Annotated[Optional[int], typer.Option("--tokens", metavar="N", help="Stop after this many trained tokens.")] = None,
    depth: Annotated[int, typer.Option("--depth", metavar="J", help="Draft steps unrolled in training.")] = 3,
    beta: Annotated[float, typer.Option("--beta", metavar="B", help="Loss weight decay per step: beta^(j-1).")] = 0.6,
    lr: Annotated[float, typer.Option("--lr", metavar="LR", help="AdamW learning rate.")] = RECIPE["lr"],
    vocab_k: Annotated[int, typer.Option("--vocab-k", metavar="K", help="Ranked vocabulary rows the head drafts over.")] = DEFAULT_VOCAB_K,
    init: Annotated[str, typer.Option("--init", metavar="hidden|embed|auto", help="W's start: embed ([0;I]), hidden ([I;0]) or auto (the better on the selection prompts).")] = "auto",
    labels: Annotated[str, typer.Option("--labels", metavar="target|tokens", help="target: the target's next-token distributions at every position (KL); tokens: its answer tokens only (cross-entropy).")] = "target",
    keep: Annotated[str, typer.Option("--keep", metavar="best|last", help="Which weights the artifact gets: best (those with the best acceptance on the selection prompts, evaluated every 90 s; the starting weights count) or last. Either way the reported estimate is on other held-out prompts.")] = "best",
    resume: Annotated[Optional[bool], typer.Option("--resume/--new", help="--resume: go on training the head already at --out (its ranking, rows and held-apart prompts); with the resume state written beside it (HEAD.train.pt), its float32 weights, optimizer and learning-rate schedule carry on too (an interrupted run's schedule to its end). Totals add up. --new: start a new head even where one exists. Default: go on when there is a head.")] = None,
    corpus: Annotated[Optional[list[Path]], typer.Option("--corpus", metavar="FILE", help="More training text, teacher-forced only (no answers generated: much cheaper a token than self-distillation): plain text, or JSONL (each line's text fields: text, content, turns, reference, prompt, response, answer; all its strings if none). Labels are the target's own distributions over it (--labels target). Repeatable.")] = None,
    corpus_tokens: Annotated[Optional[int], typer.Option("--corpus-tokens", metavar="N", help="Use at most this many --corpus tokens.")] = None,
    corpus_chunk: Annotated[int, typer.Option("--corpus-chunk", metavar="N", help="--corpus text is cut into sequences of this many tokens.")] = 512,
    trimmed: Annotated[Optional[Path], typer.Option("--trimmed", metavar="FILE", help="Take the token ranking from this VocabTrim artifact (default: count the answers).")] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the shuffling.")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", metavar="FILE", help="Artifact path (default: the cache, per profile).")] = None,
    dtype: Dtype = None,
    json_events: Annotated[bool, typer.Option("--json", help="Training's events as JSON lines on stdout, for programs (chat's training screen reads them): loading, stage starts, progress, notes, and a last 'done' line with the held-out estimate; the report goes to stderr.")] = False,
) -> None:
    """Train FastMTP's head on the target's own answers; `--method mtp` then drafts with it."""
    import signal
    import time

    launched = time.perf_counter()
    from rich.console import Console

    from specscope.core.errors import SpecScopeError
    from specscope.core.mtp import INITS
    from specscope.core.mtp_train import LABELS
    from specscope.frontends.loading import check_options, loading_progress, quiet_libraries, resolve_auto
    from specscope.profiles import load_profile
    from specscope.train.run import TrainOptions, run

    if init not in (*INITS, "auto"):
        raise SpecScopeError(f"--init must be embed, hidden or auto, got '{init}'")
    if keep not in ("best", "last"):
        raise SpecScopeError(f"--keep must be best or last, got '{keep}'")
    if labels not in LABELS:
        raise SpecScopeError(f"--labels must be {' or '.join(LABELS)}, got '{labels}'")
    if keep_apart is None:
        keep_apart = 0
    if keep_apart < 0:
        raise SpecScopeError(f"--keep-apart must be >= 0, got {keep_apart}")
    if min(batch, depth, max_new_tokens, vocab_k, max_prompt_tokens, 1 if samples is None else samples) < 1 or held < 1:
        raise SpecScopeError("--batch, --depth, --held, --max-new-tokens, --vocab-k, --samples "
                             "and --max-prompt-tokens must be >= 1")
    if corpus and labels != "target":
        raise SpecScopeError("--corpus needs --labels target (its text has no answer tokens)")
    if corpus_chunk < 8 or (corpus_tokens is not None and corpus_tokens < 1):
        raise SpecScopeError("--corpus-chunk must be >= 8 and --corpus-tokens >= 1")
    if sampled_by not in (None, "target", "drafter"):
        raise SpecScopeError(f"--sampled-by must be target or drafter, got '{sampled_by}'")
    if sampled_by == "drafter" and labels != "target":
        raise SpecScopeError("--sampled-by drafter needs --labels target (the drafter's tokens are "
                             "not the target's)")
    if (samples is None or samples > 1) and temperature <= 0:
        raise SpecScopeError(f"--temperature must be > 0 for sampled answers, got {temperature:g}")
    if minutes <= 0 or (tokens is not None and tokens < 1) or not 0 < beta <= 1 or lr <= 0:
        raise SpecScopeError("--minutes and --lr must be > 0, --tokens >= 1, --beta in (0, 1]")
    prof = load_profile(profile)
    if prof.backend == "auto":  # a FastMTP head trains on torch's hidden states
        prof = replace(prof, backend="torch")
    check_options(prof, None, dtype, None)
    quiet_libraries()
    console = Console(stderr=True)
    if dtype is None:  # a head goes on in the dtype it was trained in (train/run.py)
        from specscope.train.run import continued_dtype

        dtype = continued_dtype(prof, out, resume)
        if dtype is not None:
            console.print(f"going on in {dtype}, the dtype the head was trained in (--dtype to change)")
    # `dtype: auto` (the embedded default): generate's choice for the rest of the profile, and
    # for the dtype the one where a batch of answers runs fastest here (auto.training_dtype)
    resolved, _ = resolve_auto(prof, dtype, None, None, console, say=False)
    if dtype is None and prof.dtype == "auto":
        from specscope.auto import machine_report, training_dtype

        report = machine_report(prof)  # measured and cached by resolve_auto just now
        if report is not None:
            best, seconds = training_dtype(prof, report, batch, max_new_tokens)
            if best != resolved.dtype:
                console.print(f"training in {best}: a batch of {batch} answers is predicted "
                              f"{seconds[resolved.dtype] / seconds[best]:.1f}x faster here than in "
                              f"{resolved.dtype}, the dtype generate runs in (which uses the "
                              f"head in either; --dtype to choose)", highlight=False)
                resolved = replace(resolved, dtype=best)
    prof = resolved
    options = TrainOptions(
        profile=prof, prompts=prompts, limit=limit, keep_apart=keep_apart, held=held,
        max_new_tokens=max_new_tokens, max_prompt_tokens=max_prompt_tokens, batch=batch,
        samples=samples, temperature=temperature, sampled_by=sampled_by, minutes=minutes,
        tokens=tokens, depth=depth, beta=beta, lr=lr, vocab_k=vocab_k, init=init, labels=labels,
        keep=keep, resume=resume, corpus=list(corpus or []), corpus_tokens=corpus_tokens,
        corpus_chunk=corpus_chunk, trimmed=trimmed, seed=seed, out=out, dtype=dtype,
        launched=launched)
    # kill (SIGTERM) stops like Ctrl-C: what is done is kept, the same command goes on
    before = signal.signal(signal.SIGTERM, _stop)
    try:
        if json_events:
            from specscope.frontends.train_events import JsonEvents

            events = JsonEvents()
            done = run(options, events, events.loading)
            events.done(done)
        else:
            with Bars(console) as bars:
                done = run(options, bars, lambda: loading_progress(console, lines=True))
    finally:
        signal.signal(signal.SIGTERM, before)
    print_report(done, done.options or options, stderr=json_events)
    if done.interrupted:
        raise typer.Exit(130)


def _stop(*_) -> None:
    raise KeyboardInterrupt


class Bars:
    """Draws training's events (specscope/train/events.py): a bar per stage on a terminal,
    a line now and then without one (frontends/progress.py), notes as they come."""

    COLUMNS = {
        "answers": lambda: [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[tokens]} tokens"), TimeElapsedColumn(),
                            TimeRemainingColumn()],
        "train": lambda: [TextColumn("training"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                          TextColumn("{task.fields[tokens]} tokens  loss {task.fields[loss]}  "
                                     "held-apart acceptance {task.fields[acc]}"), TimeElapsedColumn()],
    }
    COLUMNS["hidden"] = COLUMNS["answers"]

    def __init__(self, console) -> None:
        self.console = console
        self.open: dict[str, tuple] = {}  # stage -> (progress, task)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for progress, _ in self.open.values():
            progress.stop()
        self.open.clear()

    def __call__(self, event) -> None:
        from specscope.frontends.progress import make_progress
        from specscope.train.events import Ended, Note, Started

        if isinstance(event, Note):
            self.console.print(f"[yellow]{event.text}[/yellow]" if event.warning else event.text)
        elif isinstance(event, Started):
            columns = self.COLUMNS.get(event.stage)
            progress = make_progress(self.console, columns() if columns else None, lines=True,
                                     transient=True)
            progress.start()
            name = "train" if event.stage == "train" else event.label
            task = progress.add_task(name, total=event.total, completed=event.done,
                                     **_shown(event.stage, event.fields))
            self.open[event.stage] = (progress, task)
        elif isinstance(event, Ended):
            if event.stage in self.open:
                self.open.pop(event.stage)[0].stop()
        elif event.stage in self.open:
            progress, task = self.open[event.stage]
            progress.update(task, completed=event.done, **_shown(event.stage, event.fields))


def _shown(stage: str, fields: dict) -> dict:
    """A stage's fields as the bars show them (training's loss and acceptance as text)."""
    if stage != "train":
        return dict(fields)
    acc = "-" if fields.get("acceptance") is None else _fmt(fields["acceptance"])
    if fields.get("best") is not None:
        acc += f" (best {fields['best'][0]:.2f} at step {fields['best'][1]})"
    loss = fields.get("loss")
    return {"tokens": fields["tokens"], "loss": "-" if loss is None else f"{loss:.3f}", "acc": acc}


def print_report(done, o, stderr: bool = False) -> None:
    """What the run did, on stdout (stderr: beside --json's events): its data, the start,
    training, the selection numbers and the held-out estimate, and where the artifact is."""
    from rich.console import Console

    result, before, settings = done.result, done.before, done.settings
    depth, init = o.depth, settings["init"]
    report = Console(highlight=False, stderr=stderr)
    report.print(f"[bold]FastMTP head[/bold] for {done.target} ({done.dtype})"
                 + ("  [yellow]interrupted: kept the last weights[/yellow]" if done.interrupted else ""))
    by_drafter = o.samples > 1 and o.sampled_by == "drafter"
    sampled = (f" ({done.n_train_prompts} x {o.samples - 1} sampled at T={o.temperature:g}"
               f"{' by the drafter' if by_drafter else ''}, {done.sampled_tokens} tokens)"
               if o.samples > 1 else "")
    split = settings["split"]
    if done.plan is not None:
        from specscope.train.plan import LABELS

        took = ", ".join(f"{LABELS.get(k, k)} {v:.0f} s" for k, v in done.ran.items() if v >= 0.5)
        report.print(f"  budget {o.minutes:g} min, planned: {done.plan.line()}; took: {took}")
    report.print(f"  data: {done.n_answers} training answers{sampled} + {done.n_held} selection and "
                 f"{done.n_estimate} estimate prompts held apart"
                 f"{f' (calibration and tuning splits)' if split else ''}"
                 f"{f' ({done.skipped} longer than {o.max_prompt_tokens} tokens skipped)' if done.skipped else ''}, "
                 f"{done.answer_tokens} answer tokens; "
                 f"self-distillation {done.gen_s:.0f} s"
                 f"{f' ({done.answers_resumed} answers from {done.data_folder})' if done.answers_resumed else ''}, "
                 f"hidden states {done.hidden_s:.0f} s"
                 f" ({done.hidden_new} sequences computed, {done.hidden_loaded} read from {done.hidden_dir})")
    if done.corpus_sequences:
        report.print(f"  corpus: {done.corpus_tokens} tokens in {done.corpus_sequences} sequences "
                     f"of at most {o.corpus_chunk}, from {', '.join(str(c) for c in done.corpus_paths)}")
    for name, (loss, acc) in done.scores.items():
        mark = "  <- chosen" if name == init else ""
        report.print(f"  init W = {'[0;I]' if name == 'embed' else '[I;0]'} ({name}): selection loss "
                     f"{loss:.2f}, greedy chain acceptance {_fmt(acc)}{mark}")
    if done.resumed_from is not None:
        report.print(f"  resumed from {done.resumed_from}: {before.get('steps', 0)} steps, "
                     f"{before.get('tokens', 0)} tokens, {before.get('seconds', 0):.0f} s before this "
                     f"run; estimate acceptance was {_fmt(before.get('estimate_acceptance', []))}")
    report.print(f"  training ({o.labels} labels): {result['seconds']:.0f} s, {result['steps']} steps, "
                 f"{result['tokens']} positions in all, loss {result['train_loss']:.3f}")
    selects = o.keep == "best" or len(done.scores) > 1
    what = ("a selection number: the weights or the init were chosen on it, so it is biased up"
            if selects else "nothing was chosen on it")
    report.print(f"  selection ({_n(done.n_held, 'prompt')}; {what}): loss {result['held_loss']:.3f}, "
                 f"greedy chain acceptance at steps 1..{depth}: {_fmt(result['held_acceptance'])}")
    report.print(f"  held-out estimate ({_n(done.n_estimate, 'prompt')} used for neither training nor "
                 f"selection): loss {result['estimate_loss']:.3f}, greedy chain acceptance at steps "
                 f"1..{depth}: {_fmt(result['estimate_acceptance'])}")
    if "last" in result:
        report.print(f"  kept the weights of step {result['kept_step']} (best selection acceptance; "
                     f"--keep last for the last): the last evaluated weights had loss "
                     f"{result['last']['held_loss']:.3f}, acceptance {_fmt(result['last']['held_acceptance'])}")
    report.print(f"  vocabulary: {settings['vocab_k']} ranked rows cover {done.rows_cover:.1%} of "
                 "selection answer tokens")
    report.print(f"  total {done.total_s:.0f} s; wrote {done.path}")
    report.print(f"  use it: specscope generate \"...\" --profile {done.profile} --method mtp -k 3")


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _fmt(acc: list[float]) -> str:
    return " ".join(f"{a:.2f}" for a in acc)



@mtp_app.command("eval")
@friendly_errors
def eval_head(
    profile: Profile = None,
    head: Annotated[Optional[Path], typer.Option("--head", metavar="FILE", help="The head to evaluate (default: the profile's).")] = None,
    prompts: Annotated[Optional[str], typer.Option("--prompts", metavar="FILE|multilingual|long", help="Prompts (Spec-Bench JSONL or text, one a line), or a packaged set's name. Default: the packaged Spec-Bench set.")] = None,
    split: Annotated[str, typer.Option("--split", metavar="NAME", help="report, tuning, calibration or all (a file without splits: all).")] = "report",
    categories: Annotated[Optional[str], typer.Option("--categories", metavar="A,B", help="Only these categories.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", metavar="N", help="Prompts per category (0: all).")] = 2,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", metavar="N", help="Length of the target's answers.")] = 128,
    script_rows: Annotated[Optional[int], typer.Option("--script-rows", metavar="M", help="Draft over the first M tokens of the prompt's script too, where it is not Latin (language-aware vocabulary; 0: off). Default: the profile's script_rows.")] = None,
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap", help="Evaluate prompts the head was trained or selected on, flagged.")] = False,
    dtype: Dtype = None,
    json_out: Annotated[bool, typer.Option("--json", help="The numbers as one JSON object on stdout.")] = False,
) -> None:
    """A head's greedy acceptance at draft steps 1..3 on prompts it never saw, per category."""
    import json

    from rich.console import Console

    from specscope.core.errors import SpecScopeError
    from specscope.frontends.loading import check_options, loading_progress, quiet_libraries
    from specscope.profiles import load_profile
    from specscope.prompts import SPLITS, parse_categories
    from specscope.train.evaluate import EvalOptions, evaluate_head

    if split != "all" and split not in SPLITS:
        raise SpecScopeError(f"--split must be {', '.join(SPLITS)} or all, got '{split}'")
    if limit is not None and limit < 0 or max_new_tokens < 1:
        raise SpecScopeError("--limit must be >= 0 and --max-new-tokens >= 1")
    if script_rows is not None and script_rows < 0:
        raise SpecScopeError(f"--script-rows must be >= 0, got {script_rows}")
    prof = load_profile(profile)
    if prof.backend != "torch":
        prof = replace(prof, backend="torch")
    check_options(prof, None, dtype, None)
    quiet_libraries()
    console = Console(stderr=True)
    options = EvalOptions(profile=prof, head=head, prompts=prompts,
                          split=None if split == "all" else split,
                          categories=parse_categories(categories), limit=limit or None,
                          max_new_tokens=max_new_tokens, script_rows=script_rows,
                          allow_overlap=allow_overlap, dtype=dtype)
    with Bars(console) as bars:
        rep = evaluate_head(options, bars, lambda: loading_progress(console, lines=True))

    def row_dict(r) -> dict:
        return {"prompts": r.prompts, "answer_tokens": r.tokens, "in_rows": round(r.cover, 4),
                "acceptance": [round(a, 4) for a in r.acceptance],
                "scripts": {str(k): v for k, v in r.scripts.items()}}

    if json_out:
        print(json.dumps({"head": str(rep.head), "target": rep.target, "dtype": rep.dtype,
                          "k": rep.k, "script_rows": rep.script_rows, "flagged": rep.flagged,
                          "answers_resumed": rep.answers_resumed,
                          "overall": row_dict(rep.overall),
                          "categories": {c: row_dict(r) for c, r in rep.by_category.items()},
                          "trained": {key: rep.trained.get(key) for key in
                                      ("seconds", "steps", "tokens", "n_train", "samples",
                                       "estimate_acceptance")}}))
        return
    out = Console(highlight=False)
    t = rep.trained
    out.print(f"[bold]FastMTP head[/bold] {rep.head} ({rep.dtype}, {rep.k} ranked rows"
              f"{f' + {rep.script_rows} script rows' if rep.script_rows else ''}): trained "
              f"{t.get('seconds', 0):.0f} s on {t.get('n_train', '?')} answers; its own held-out "
              f"estimate {_fmt(t.get('estimate_acceptance') or [])}")
    width = max(len(c) for c in [*rep.by_category, "all"])
    out.print(f"  {'category':<{width}}  prompts  tokens  in rows  acceptance at steps 1..3")
    for name, r in [*rep.by_category.items(), ("all", rep.overall)]:
        scripts = ", ".join(f"{k}" for k in r.scripts if k is not None)
        out.print(f"  {name:<{width}}  {r.prompts:>7}  {r.tokens:>6}  {r.cover:>7.1%}  {_fmt(r.acceptance)}"
                  f"{f'  ({scripts})' if scripts else ''}")
    if rep.flagged:
        out.print(f"  [yellow]flagged: the head was trained or selected on {len(rep.flagged)} of these "
                  f"prompts ({', '.join(rep.flagged[:8])})[/yellow]")
    if rep.skipped:
        out.print(f"  {rep.skipped} prompts longer than {options.max_prompt_tokens} tokens skipped")
