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
from dataclasses import dataclass, field
from pathlib import Path

import torch

from specscope.core.errors import SpecScopeError
from specscope.train.corpus import (answers_file, check_corpus, corpus_prompts, corpus_samples,
                                    held_apart, hidden_key, prompt_key, read_corpus)
from specscope.train import DEFAULT_HELD, DEFAULT_VOCAB_K
from specscope.train.events import Note, OnEvent, ignore


@dataclass
class TrainOptions:
    """`mtp train`'s options (the command's help says what each means)."""

    profile: object = None  # a Profile (checked: frontends' check_options), or a name
    prompts: Path | None = None
    limit: int | None = 3
    keep_apart: int = 0
    held: int = DEFAULT_HELD
    max_new_tokens: int = 128
    max_prompt_tokens: int = 768
    batch: int = 8
    samples: int = 1
    temperature: float = 0.8
    sampled_by: str = "target"
    minutes: float = 10.0
    tokens: int | None = None
    depth: int = 3
    beta: float = 0.6
    lr: float = 2e-4
    vocab_k: int = DEFAULT_VOCAB_K
    init: str = "auto"
    labels: str = "target"
    keep: str = "best"
    resume: bool = False
    corpus: list[Path] = field(default_factory=list)
    corpus_tokens: int | None = None
    corpus_chunk: int = 512
    trimmed: Path | None = None
    seed: int = 0
    out: Path | None = None
    dtype: str | None = None


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


def run(o: TrainOptions, on_event: OnEvent = ignore, loading=None) -> TrainReport:
    """Train a head as `o` says (options already checked for their own values); refusals that
    depend on the prompts, the profile or the artifact raise SpecScopeError."""
    from specscope.core.lm import CachedLM
    from specscope.core.models import eos_ids, load_causal_lm, load_tokenizer
    from specscope.core.mtp import artifact_path, load_artifact
    from specscope.core.vocab import model_fingerprint
    from specscope.profiles import Profile, load_profile
    from specscope.prompts import has_splits, prompt_source, read_prompts, select_prompts

    loading = loading or (lambda: nullcontext(None))
    texts = read_corpus(o.corpus)
    in_corpus = corpus_prompts(o.corpus)
    prof = o.profile if isinstance(o.profile, Profile) else load_profile(o.profile)
    if o.sampled_by == "drafter" and not prof.drafter:
        raise SpecScopeError(f"--sampled-by drafter: profile '{prof.name}' has no drafter")
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
    ranking = None
    if o.trimmed or prof.trimmed:
        from specscope.core.vocab import read_trimmed

        ranking = read_trimmed(o.trimmed or prof.trimmed).ranking
    torch.manual_seed(o.seed)

    t_start = time.perf_counter()
    with loading() as progress:
        tokenizer = load_tokenizer(prof.target, progress)
        model = load_causal_lm(prof.target, dtype, prof.device, progress)
    target = CachedLM(model)
    previous = load_artifact(out, target, prof.target, tokenizer) if o.resume else None
    if previous is not None:  # say what a resumed head keeps from its first run
        first = previous.meta.get("training", {})
        if not first.get("estimate_keys"):
            raise SpecScopeError(f"--resume: {out} was trained before its held-out estimate was kept "
                                 "apart from its selection prompts; train a new head (no --resume)")
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
    data = _answers(o, prof, model, tokenizer, encoded, held_keys, estimate_keys, eos, out, fp,
                    dtype, on_event, loading)
    train_set, held_out, estimate_set = data["train"], data["held"], data["estimate"]
    extra = corpus_samples(tokenizer, texts, o.corpus_chunk, o.corpus_tokens)
    n_answers = len(train_set)
    train_set += extra
    samples_all = train_set + held_out + estimate_set

    from specscope.train.caches import hidden_cached

    t0 = time.perf_counter()
    # cached per target, dtype and device: a --resume or a run with more samples computes only
    # the sequences it has not seen
    hidden_dir = out.parent / "hidden" / answers_file(out, prof.name, hidden_key(model, fp, dtype)).stem
    hidden_new, hidden_loaded = hidden_cached(model, samples_all, hidden_dir, on_event)
    hidden_s = time.perf_counter() - t0

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
        total_s=time.perf_counter() - t_start)


def _answers(o: TrainOptions, prof, model, tokenizer, encoded, held_keys, estimate_keys, eos,
             out: Path, fp: dict, dtype: str, on_event: OnEvent, loading) -> dict:
    """The target's greedy answers to every prompt, split into training, selection and estimate
    samples, and the sampled answers to the training prompts (--samples)."""
    from specscope.core.lm import CachedLM
    from specscope.core.models import load_causal_lm
    from specscope.core.mtp_train import Sample
    from specscope.core.vocab import model_fingerprint
    from specscope.train.caches import self_distil_cached

    # one answers file per target, dtype and length: answers are keyed by their prompt inside it,
    # so another --limit or prompt file reuses every answer it shares
    data_file = answers_file(out, prof.name, [fp["head_sha256"], dtype, o.max_new_tokens])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos or {0})

    t0 = time.perf_counter()
    answers, resumed = self_distil_cached(model, [ids for _, ids in encoded], o.max_new_tokens, eos,
                                          pad, o.batch, data_file, on_event)
    greedy = [Sample(ids + ans, len(ids), prompt_len=len(ids)) for (_, ids), ans in zip(encoded, answers)]
    held_out = [s for s in greedy if prompt_key(s.ids[:s.answer_start]) in held_keys]
    estimate_set = [s for s in greedy if prompt_key(s.ids[:s.answer_start]) in estimate_keys]
    train_set = [s for s in greedy if prompt_key(s.ids[:s.answer_start]) not in held_keys | estimate_keys]
    if not held_out or not estimate_set:  # only on --resume: a new run holds its own prompts apart
        raise SpecScopeError("--resume: the earlier run's held-apart prompts are not among these "
                             "prompts (use the same --prompts)")
    if not train_set:
        raise SpecScopeError("every prompt is held apart: use more prompts")
    # sampled answers to the training prompts only (the held-apart estimate stays on greedy text)
    train_prompts = [s.ids[:s.answer_start] for s in train_set]
    by_drafter = o.samples > 1 and o.sampled_by == "drafter"
    writer, writer_file, sampled_tokens = model, data_file, 0
    if by_drafter:
        with loading() as progress:
            writer = load_causal_lm(prof.drafter, dtype, prof.device, progress)
        drafter_sha = model_fingerprint(CachedLM(writer), prof.drafter)["head_sha256"]
        writer_file = answers_file(out, f"{prof.name}-drafter",
                                   [fp["head_sha256"], drafter_sha, dtype, o.max_new_tokens])
    for n in range(1, o.samples):
        more, more_resumed = self_distil_cached(writer, train_prompts, o.max_new_tokens, eos, pad,
                                                o.batch, writer_file, on_event, n, o.temperature,
                                                f"the {o.sampled_by}")
        # the drafter's text has no answer part: every position is labelled by the target's own
        # distribution, none by the drafter's tokens (as --corpus text)
        # the prompt is trained on once, with its greedy answer: here it is context only
        train_set += [Sample(p + ans, len(p + ans) if by_drafter else len(p), prompt_len=len(p),
                             loss_from=max(0, len(p) - 2))
                      for p, ans in zip(train_prompts, more)]
        resumed += more_resumed
        sampled_tokens += sum(map(len, more))
    del writer
    return {"train": train_set, "held": held_out, "estimate": estimate_set, "resumed": resumed,
            "file": data_file, "n_prompts": len(train_prompts), "sampled_tokens": sampled_tokens,
            "seconds": time.perf_counter() - t0}
