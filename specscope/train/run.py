"""`mtp train`'s pipeline, from checked options to the artifact (the command's module text says
what each step is for):

1. the prompts: trained on, held apart for selection, held apart for the estimate;
2. the target's answers (self-distillation), and sampled ones, cached beside the artifact;
3. --corpus text, and the target's hidden states over everything (cached too);
4. the ranking and rows the head drafts over, the head's start (--init, or the resumed head);
5. training (train/loop.py), the held-out estimate on the kept weights, the artifact.

Progress goes to `on_event` (train/events.py); model loading to a `loading()` context's
(stage, done, total) callback. The result is a `TrainReport`: plain numbers for a front end to
show.
"""
from __future__ import annotations

import hashlib
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from specscope.core.errors import SpecScopeError
from specscope.train.caches import answer_key, read_answers
from specscope.train.corpus import (answers_file, check_corpus, corpus_prompts, corpus_samples,
                                    held_apart, hidden_key, prompt_key, read_corpus)
from specscope.train import DEFAULT_HELD, DEFAULT_VOCAB_K
from specscope.train.plan import DEFAULT_MINUTES, RECIPE
from specscope.train.events import Note, OnEvent, ignore
from specscope.train.plan import replan


@dataclass
class TrainOptions:
    """`mtp train`'s options (the command's help says what each means)."""

    profile: object = None  # a Profile (checked: frontends' check_options), or a name
    prompts: Path | None = None
    limit: int | None = None  # None: as many calibration prompts as the budget affords
    keep_apart: int = 0
    held: int = DEFAULT_HELD
    max_new_tokens: int = RECIPE["max_new_tokens"]
    max_prompt_tokens: int = 768
    batch: int = RECIPE["batch"]
    samples: int | None = None  # None: as many as the budget affords, up to RECIPE_SAMPLES
    temperature: float = RECIPE["temperature"]
    sampled_by: str | None = None  # None: the drafter where the profile has one
    minutes: float = DEFAULT_MINUTES  # the whole run's wall time (train/plan.py)
    tokens: int | None = None
    depth: int = 3
    beta: float = 0.6
    lr: float = RECIPE["lr"]
    vocab_k: int = DEFAULT_VOCAB_K
    init: str = "auto"
    labels: str = "target"
    keep: str = "best"
    resume: bool | None = None  # None: go on with the head at `out` when there is one
    corpus: list[Path] = field(default_factory=list)
    corpus_tokens: int | None = None
    corpus_chunk: int = 512
    trimmed: Path | None = None
    seed: int = 0
    out: Path | None = None
    dtype: str | None = None
    launched: float | None = None  # time.perf_counter() at launch (the budget counts from it)
    train_until: float | None = None  # set by run(): when training must end


@dataclass
class TrainReport:
    """What a run did, for the user: the numbers the command prints."""

    target: str
    profile: str
    dtype: str
    path: Path
    result: dict  # train/loop.py's result, with the estimate's loss and acceptance
    interrupted: bool
    settings: dict  # the artifact's training metadata
    scores: dict  # init name -> (selection loss, acceptance) (--init auto, or the one given)
    before: dict  # a resumed head's earlier training metadata ({} for a new head)
    resumed_from: Path | None
    n_held: int
    n_estimate: int
    n_answers: int
    n_train_prompts: int
    sampled_tokens: int
    answer_tokens: int
    skipped: int
    answers_resumed: int
    data_folder: Path
    hidden_new: int
    hidden_loaded: int
    hidden_dir: Path
    gen_s: float
    hidden_s: float
    corpus_tokens: int
    corpus_sequences: int
    corpus_paths: list[Path]
    rows_cover: float  # share of selection answer tokens inside the drafting rows
    total_s: float
    plan: object = None  # the plan (train/plan.py), as made and as it ran
    ran: dict = field(default_factory=dict)  # stage -> seconds it took
    options: object = None  # the options as run (the plan's prompts and samples filled in)


def continued_dtype(prof, out: Path | None, resume: bool | None) -> str | None:
    """The dtype of the head already at `out` (default: the profile's head), when this run goes
    on with it (not --new): without --dtype a head goes on in the dtype it was trained in, so its
    cached answers and hidden states serve, and `dtype: auto` deciding otherwise on a later
    measurement (bfloat16 and float32 run close on some CPUs) does not start its data over."""
    from specscope.core.mtp import artifact_path, read_meta

    if resume is False:
        return None
    path = Path(out or artifact_path(prof.name)).expanduser()
    if not path.is_file():
        return None
    try:
        return read_meta(path)[0].get("training", {}).get("dtype")
    except SpecScopeError:
        return None


def run(o: TrainOptions, on_event: OnEvent = ignore, loading=None) -> TrainReport:
    """Train a head as `o` says (options already checked for their own values); refusals that
    depend on the prompts, the profile or the artifact raise SpecScopeError."""
    from specscope.core.lm import CachedLM
    from specscope.core.models import eos_ids, load_causal_lm, load_tokenizer
    from specscope.core.mtp import artifact_path, load_artifact
    from specscope.core.vocab import model_fingerprint
    from specscope.profiles import Profile, load_profile
    from specscope.prompts import has_splits, prompt_source, read_prompts, select_prompts

    t_launch = o.launched or time.perf_counter()
    loading = loading or (lambda: nullcontext(None))
    texts = read_corpus(o.corpus)
    in_corpus = corpus_prompts(o.corpus)
    prof = o.profile if isinstance(o.profile, Profile) else load_profile(o.profile)
    if o.sampled_by == "drafter" and not prof.drafter:
        raise SpecScopeError(f"--sampled-by drafter: profile '{prof.name}' has no drafter")
    if o.sampled_by is None:  # the recipe: the drafter writes the sampled answers, where there is one
        o = replace(o, sampled_by="drafter" if prof.drafter and o.labels == "target" else "target")
    dtype = o.dtype or prof.dtype
    source = prompt_source(o.prompts)
    everything = read_prompts(source)
    split = "calibration" if has_splits(everything) else None
    chosen = select_prompts(everything, None, o.limit, source, from_end=True,
                            keep_apart=o.keep_apart, split=split)
    # the prompts held apart for selection and the estimate: the tuning split, or (a file without
    # splits) spread over the chosen prompts
    pool = select_prompts(everything, None, None, source, split="tuning") if split else None
    held = o.held
    if split and len(pool) < 2 * held:
        raise SpecScopeError(f"{len(pool)} tuning prompts: --held {held} needs {2 * held}")
    if split:  # before any model loads: the selection and estimate prompts come from the tuning split
        check_corpus(in_corpus, pool, "the tuning split (where the selection and estimate prompts come from)")
    if not split and len(chosen) <= 2 * held:
        raise SpecScopeError(f"{len(chosen)} calibration prompts: need more than twice --held {held} "
                             "(the selection and the estimate prompts are held apart)")
    out = Path(o.out or artifact_path(prof.name)).expanduser()
    if o.resume and not out.is_file():
        raise SpecScopeError(f"--resume: no head at {out} (train one first, or name it with --out)")
    implicit = o.resume is None and out.is_file()  # the same command again: go on with its head
    o = replace(o, resume=bool(o.resume or implicit))
    if implicit:
        on_event(Note(f"going on with the head at {out} (--new starts a new one)"))
    ranking = None
    if o.trimmed or prof.trimmed:
        from specscope.core.vocab import read_trimmed

        ranking = read_trimmed(o.trimmed or prof.trimmed).ranking
    torch.manual_seed(o.seed)

    with loading() as progress:
        tokenizer = load_tokenizer(prof.target, progress, dtype)
        model = load_causal_lm(prof.target, dtype, prof.device, progress)
    target = CachedLM(model)
    previous = load_artifact(out, target, prof.target, tokenizer) if o.resume else None
    if previous is not None:  # say what a resumed head keeps from its first run
        first = previous.meta.get("training", {})
        if not first.get("estimate_keys"):
            raise SpecScopeError(f"--resume: {out} was trained before its held-out estimate was kept "
                                 "apart from its selection prompts; train a new head (--new)")
        ignored = [name for name, given, kept in (
            ("--vocab-k", o.vocab_k if o.vocab_k != DEFAULT_VOCAB_K else None, previous.k),
            ("--held", held if held != DEFAULT_HELD else None, first.get("n_held")),
            ("--trimmed", o.trimmed, None)) if given is not None and given != kept]
        if ignored:
            on_event(Note(f"--resume keeps the earlier head's ranking, rows and held-apart "
                          f"prompts: {', '.join(ignored)} ignored", warning=True))
    eos = eos_ids(tokenizer, model, prof.eos_tokens)

    from specscope.session import encode_prompt

    def encode(selection):
        pairs = [(p, encode_prompt(tokenizer, p.text, prof.chat_template, prof.system_prompt))
                 for p in selection]
        return [(p, ids) for p, ids in pairs if len(ids) <= o.max_prompt_tokens], \
            sum(len(ids) > o.max_prompt_tokens for _, ids in pairs)

    encoded, skipped = encode(chosen)
    held_from, _ = encode(pool) if split else (encoded, 0)
    if len(held_from) < 2 * held + (0 if split else 1) or not encoded:
        raise SpecScopeError(f"only {len(encoded)} prompts of at most {o.max_prompt_tokens} tokens")
    if previous is None:
        held_keys, estimate_keys = held_apart([ids for _, ids in held_from], held)
    else:  # the earlier runs' held-apart prompts: never trained on, and comparable numbers
        held_keys = set(previous.meta["training"]["held_keys"])
        estimate_keys = set(previous.meta["training"]["estimate_keys"])
    if split:  # the tuning prompts held apart join the calibration prompts trained on
        encoded += [(p, ids) for p, ids in held_from if prompt_key(ids) in held_keys | estimate_keys]
    prompt_of = {prompt_key(ids): p for p, ids in encoded}
    selection_p = [prompt_of[k] for k in sorted(held_keys) if k in prompt_of]
    estimate_p = [prompt_of[k] for k in sorted(estimate_keys) if k in prompt_of]
    check_corpus(in_corpus, selection_p + estimate_p, "the prompts held apart for selection and the estimate")
    fp = model_fingerprint(target, prof.target)
    hidden_dir = out.parent / "hidden" / answers_file(out, prof.name, hidden_key(model, fp, dtype)).stem
    data = _answers(o, prof, model, tokenizer, encoded, held_keys, estimate_keys, eos, out, fp,
                    dtype, on_event, loading, t_launch, hidden_dir)
    o = data["options"]  # the plan's prompts and samples
    train_set, held_out, estimate_set = data["train"], data["held"], data["estimate"]
    extra = corpus_samples(tokenizer, texts, o.corpus_chunk, o.corpus_tokens)
    n_answers = len(train_set)
    train_set += extra
    samples_all = train_set + held_out + estimate_set

    from specscope.train.caches import hidden_cached

    t0 = time.perf_counter()
    # cached per target, dtype and device: a --resume or a run with more samples computes only
    # the sequences it has not seen
    hidden_new, hidden_loaded = hidden_cached(model, samples_all, hidden_dir, on_event)
    hidden_s = time.perf_counter() - t0
    ran = {**data["ran"], "hidden": hidden_s}
    plan = replan(data["plan"], ran)  # what the stages took: training gets what is left
    o = replace(o, train_until=t_launch + plan.end_of("train"))

    from specscope.train.head import train_head

    trained_p = [p for p, ids in encoded if prompt_key(ids) not in held_keys | estimate_keys]
    facts = {"prompts": str(o.prompts or "default"), "split": split, "source": source,
             "n_train": n_answers, "n_corpus": len(extra), "n_estimate": len(estimate_set),
             "estimate_keys": sorted(estimate_keys), "held_keys": sorted(held_keys),
             "trained_p": trained_p, "selection_p": selection_p, "estimate_p": estimate_p,
             "in_corpus": in_corpus, "dtype": dtype,
             "corpus": [{"path": str(c), "sha256": hashlib.sha256(t.encode()).hexdigest()}
                        for c, t in texts],
             "corpus_tokens": sum(len(s.ids) for s in extra)}
    trained = train_head(o, prof, model, target, tokenizer, out, ranking, previous, train_set,
                         held_out, estimate_set, facts, on_event)
    return TrainReport(
        target=prof.target, profile=prof.name, dtype=dtype, path=trained["path"],
        result=trained["result"], interrupted=trained["interrupted"], settings=trained["settings"],
        scores=trained["scores"], before=trained["before"],
        resumed_from=out if previous is not None else None, n_held=len(held_out),
        n_estimate=len(estimate_set), n_answers=n_answers, n_train_prompts=data["n_prompts"],
        sampled_tokens=data["sampled_tokens"],
        answer_tokens=sum(len(s.ids) - s.answer_start for s in samples_all), skipped=skipped,
        answers_resumed=data["resumed"], data_folder=data["file"].parent, hidden_new=hidden_new,
        hidden_loaded=hidden_loaded, hidden_dir=hidden_dir, gen_s=data["seconds"],
        hidden_s=hidden_s, corpus_tokens=facts["corpus_tokens"], corpus_sequences=len(extra),
        corpus_paths=[c for c, _ in texts], rows_cover=trained["rows_cover"],
        total_s=time.perf_counter() - t_launch, plan=data["plan"], options=o,
        ran={**ran, "train+finish": time.perf_counter() - t0 - hidden_s})


def _answers(o: TrainOptions, prof, model, tokenizer, encoded, held_keys, estimate_keys, eos,
             out: Path, fp: dict, dtype: str, on_event: OnEvent, loading, t_launch: float,
             hidden_dir: Path) -> dict:
    """The plan (train/plan.py), then the target's greedy answers to the prompts held apart and
    to as many training prompts as it affords, split into training, selection and estimate
    samples, and the sampled answers to the training prompts (--samples)."""
    from specscope.core.lm import CachedLM
    from specscope.core.models import load_causal_lm
    from specscope.core.mtp_train import Sample
    from specscope.core.vocab import model_fingerprint
    from specscope.train.budget import make_plan, plan_note, rates_for, spread
    from specscope.train.caches import self_distil_cached

    # one answers file per target, dtype and length: answers are keyed by their prompt inside it,
    # so another --limit or prompt file reuses every answer it shares
    data_file = answers_file(out, prof.name, [fp["head_sha256"], dtype, o.max_new_tokens])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos or {0})
    apart = held_keys | estimate_keys
    held_pairs = [pair for pair in encoded if prompt_key(pair[1]) in apart]
    train_pairs = [pair for pair in encoded if prompt_key(pair[1]) not in apart]
    if not held_pairs or len(held_pairs) < len(apart):  # only on --resume: a new run holds its own apart
        raise SpecScopeError("--resume: the earlier run's held-apart prompts are not among these "
                             "prompts (use the same --prompts, or --new for a new head)")
    if not train_pairs:
        raise SpecScopeError("every prompt is held apart: use more prompts")
    done = set(read_answers(data_file))
    train_pairs = spread([p for p in train_pairs if answer_key(p[1]) in done]) + \
        spread([p for p in train_pairs if answer_key(p[1]) not in done])  # what is on disk first
    by_drafter = o.sampled_by == "drafter" and (o.samples is None or o.samples > 1)
    rates, writer = rates_for(prof, model, dtype, o.batch, o.temperature,
                              [ids for _, ids in held_pairs + train_pairs], pad, by_drafter, loading,
                              on_event)
    writer_file = None
    if by_drafter:
        if writer is None:
            with loading() as progress:
                writer = load_causal_lm(prof.drafter, dtype, prof.device, progress)
        drafter_sha = model_fingerprint(CachedLM(writer), prof.drafter)["head_sha256"]
        writer_file = answers_file(out, f"{prof.name}-drafter",
                                   [fp["head_sha256"], drafter_sha, dtype, o.max_new_tokens])
    plan = make_plan(o, rates, t_launch, [ids for _, ids in held_pairs],
                     [ids for _, ids in train_pairs], data_file, writer_file, hidden_dir,
                     o.sampled_by)
    on_event(plan_note(plan, o))
    fixed = o.samples is not None and o.limit is not None  # nothing left to the plan: no deadlines
    o = replace(o, samples=plan.samples)
    ran = {"start": time.perf_counter() - t_launch}

    t0 = time.perf_counter()
    asked = held_pairs + train_pairs[:plan.train_prompts]
    deadline = None if o.limit is not None else t_launch + plan.end_of("answers")
    answers, resumed = self_distil_cached(model, [ids for _, ids in asked], o.max_new_tokens, eos,
                                          pad, o.batch, data_file, on_event, deadline=deadline,
                                          required=len(held_pairs) + 1)
    ran["answers"] = time.perf_counter() - t0
    answered = {prompt_key(ids): ans for (_, ids), ans in zip(asked, answers) if ans is not None}
    made = [ids for _, ids in asked if prompt_key(ids) in answered and answer_key(ids) not in done]
    if len(made) >= o.batch // 2:  # what this many answers really took tunes the next plan
        from types import SimpleNamespace

        from specscope.train.budget import save_corrected
        from specscope.train.plan import answers_s

        shape = SimpleNamespace(prompt_tokens=sum(map(len, made)) / len(made),
                                answer_tokens=o.max_new_tokens)
        save_corrected(prof, dtype, o.batch, by_drafter, rates, answers_s(len(made), rates, shape),
                       ran["answers"])
    # in the prompts' own order (not the order they were answered in): the training data's
    # order, and so a resumed run's, does not depend on what an earlier run left on disk
    greedy = [Sample(ids + answered[prompt_key(ids)], len(ids), prompt_len=len(ids))
              for _, ids in encoded if prompt_key(ids) in answered]
    held_out = [s for s in greedy if prompt_key(s.ids[:s.answer_start]) in held_keys]
    estimate_set = [s for s in greedy if prompt_key(s.ids[:s.answer_start]) in estimate_keys]
    train_set = [s for s in greedy if prompt_key(s.ids[:s.answer_start]) not in apart]
    # sampled answers to the training prompts only (the held-apart estimate stays on greedy text)
    train_prompts = [s.ids[:s.answer_start] for s in train_set]
    t1, sampled_tokens = time.perf_counter(), 0
    deadline = None if fixed else t_launch + replan(plan, ran).end_of("sampled")
    writer = writer if by_drafter else model
    for n in range(1, plan.samples):
        if deadline is not None and time.perf_counter() >= deadline:
            on_event(Note(f"sampled answers #{n} to #{plan.samples - 1}: the plan's time for them "
                          "is spent (run the command again to go on)"))
            break
        more, more_resumed = self_distil_cached(writer, train_prompts, o.max_new_tokens, eos, pad,
                                                o.batch, writer_file or data_file, on_event, n,
                                                o.temperature, f"the {o.sampled_by}", deadline)
        # the drafter's text has no answer part: every position is labelled by the target's own
        # distribution, none by the drafter's tokens (as --corpus text)
        # the prompt is trained on once, with its greedy answer: here it is context only
        train_set += [Sample(p + ans, len(p + ans) if by_drafter else len(p), prompt_len=len(p),
                             loss_from=max(0, len(p) - 2))
                      for p, ans in zip(train_prompts, more) if ans is not None]
        resumed += more_resumed
        sampled_tokens += sum(len(a) for a in more if a is not None)
    ran["sampled"] = time.perf_counter() - t1
    del writer
    return {"train": train_set, "held": held_out, "estimate": estimate_set, "resumed": resumed,
            "file": data_file, "n_prompts": len(train_prompts), "sampled_tokens": sampled_tokens,
            "seconds": time.perf_counter() - t0, "plan": plan, "ran": ran, "options": o}
