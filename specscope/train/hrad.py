"""`hrad train`'s pipeline: H-RAD's draft-length predictor (core/hrad.py) from self-distillation.

1. prompts: the packaged set's calibration split to train on (--limit per category, from the end
   of each), its tuning split for the held-apart estimate (2 x --held prompts, spread over the
   categories; nothing is selected on them);
2. the target's greedy answers (train/caches.py: the same answers file as `mtp train`, so either
   command reuses the other's answers) and its teacher-forced hidden states (the same cache);
3. one teacher-forced drafter pass per answer gives every label (core/hrad.accept_runs);
4. the fit (train/hrad_fit.py) for --seconds, the estimate on the held-apart prompts, the
   artifact (atomically written, with both models' identities and the estimate).
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from specscope.core.errors import SpecScopeError
from specscope.train import DEFAULT_HELD
from specscope.train.events import Beat, Ended, Note, OnEvent, Progress, Started, ignore


@dataclass
class HradOptions:
    profile: object = None  # a Profile (checked) or a name
    prompts: Path | None = None
    limit: int = 8  # training prompts per category
    held: int = DEFAULT_HELD
    max_new_tokens: int = 96
    max_prompt_tokens: int = 768
    batch: int = 8
    cap: int = 6
    width: int = 256
    seconds: float = 60.0  # the fit's time (the data's time is what it takes)
    epochs: int | None = None
    lr: float = 1e-3
    seed: int = 0
    out: Path | None = None
    dtype: str | None = None


def run_hrad(o: HradOptions, on_event: OnEvent = ignore, loading=None) -> dict:
    from specscope.core.adaptive import MAX_AUTO_LEN
    from specscope.core.hrad import artifact_path, save_artifact
    from specscope.core.lm import CachedLM
    from specscope.core.models import eos_ids, load_causal_lm, load_tokenizer
    from specscope.core.mtp import artifact_path as mtp_path
    from specscope.core.mtp_train import Sample
    from specscope.core.vocab import model_fingerprint
    from specscope.profiles import Profile, load_profile
    from specscope.prompts import has_splits, prompt_source, read_prompts, select_prompts, used_record
    from specscope.session import encode_prompt
    from specscope.train.caches import hidden_cached, self_distil_cached
    from specscope.train.corpus import answers_file, held_apart, hidden_key, prompt_key
    from specscope.train.hrad_fit import drafter_next, estimate, examples_of, fit

    t_launch = time.perf_counter()
    loading = loading or (lambda: nullcontext(None))
    prof = o.profile if isinstance(o.profile, Profile) else load_profile(o.profile)
    if not prof.drafter:
        raise SpecScopeError(f"profile '{prof.name}' has no drafter: H-RAD sizes a draft model's drafts")
    dtype = o.dtype or prof.dtype
    source = prompt_source(o.prompts)
    everything = read_prompts(source)
    split = "calibration" if has_splits(everything) else None
    chosen = select_prompts(everything, None, o.limit, source, from_end=True, split=split)
    pool = select_prompts(everything, None, None, source, split="tuning") if split else chosen
    if len(pool) < 2 * o.held + (0 if split else 1):
        raise SpecScopeError(f"{len(pool)} prompts to hold apart from: --held {o.held} needs {2 * o.held}")
    out = Path(o.out or artifact_path(prof.name)).expanduser()

    with loading() as progress:
        tokenizer = load_tokenizer(prof.target, progress, dtype)
        model = load_causal_lm(prof.target, dtype, prof.device, progress)
        drafter = load_causal_lm(prof.drafter, dtype, prof.device, progress)
    target, draft_lm = CachedLM(model), CachedLM(drafter)
    eos = eos_ids(tokenizer, model, prof.eos_tokens)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos or {0})

    def encode(selection):
        pairs = [(p, encode_prompt(tokenizer, p.text, prof.chat_template, prof.system_prompt))
                 for p in selection]
        return [(p, ids) for p, ids in pairs if len(ids) <= o.max_prompt_tokens]

    held_from = encode(pool)
    selection, estimate_keys = held_apart([ids for _, ids in held_from], o.held)
    apart = selection | estimate_keys  # nothing is selected: both halves estimate
    held_pairs = [(p, ids) for p, ids in held_from if prompt_key(ids) in apart]
    train_pairs = [(p, ids) for p, ids in encode(chosen) if prompt_key(ids) not in apart]
    if not train_pairs:
        raise SpecScopeError("no training prompts left (use more prompts, or a larger --limit)")
    # the answers and hidden states `mtp train` caches for this target, dtype and length
    fp = model_fingerprint(target, prof.target)
    mtp_out = mtp_path(prof.name)
    data_file = answers_file(mtp_out, prof.name, [fp["head_sha256"], dtype, o.max_new_tokens])
    hidden_dir = mtp_out.parent / "hidden" / answers_file(mtp_out, prof.name,
                                                          hidden_key(model, fp, dtype)).stem
    asked = held_pairs + train_pairs
    t0 = time.perf_counter()
    answers, resumed = self_distil_cached(model, [ids for _, ids in asked], o.max_new_tokens, eos,
                                          pad, o.batch, data_file, on_event)
    gen_s = time.perf_counter() - t0
    samples = [Sample(ids + ans, len(ids), prompt_len=len(ids))
               for (_, ids), ans in zip(asked, answers) if ans]
    t0 = time.perf_counter()
    hidden_cached(model, samples, hidden_dir, on_event)
    hidden_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    on_event(Started("labels", "the drafter's greedy chains (labels)", len(samples)))
    nexts, done = [], [0]
    beat = Beat(lambda: on_event(Progress("labels", done[0])))
    try:
        with beat:
            for s in samples:
                nexts.append(drafter_next(drafter, s.ids))
                done[0] += 1
                beat()
    finally:
        on_event(Ended("labels"))
    is_held = [prompt_key(s.ids[:s.answer_start]) in apart for s in samples]
    embed = target.embed
    train = examples_of([s for s, h in zip(samples, is_held) if not h],
                        [n for n, h in zip(nexts, is_held) if not h], embed, o.cap)
    held = examples_of([s for s, h in zip(samples, is_held) if h],
                       [n for n, h in zip(nexts, is_held) if h], embed, o.cap)
    labels_s = time.perf_counter() - t0
    if not len(train):
        raise SpecScopeError("no labelled positions: the answers are too short (raise --max-new-tokens)")
    on_event(Note(f"{len(train)} training positions from {len(train_pairs)} prompts, "
                  f"{len(held)} held-apart positions from {len(held_pairs)} prompts"))

    on_event(Started("fit", "fitting the predictor", 1.0))
    state = {"share": 0.0, "loss": None}
    progress_beat = Beat(lambda: on_event(Progress("fit", state["share"])))

    def tick(share: float, loss: float) -> None:
        state.update(share=share, loss=loss)
        progress_beat()

    try:
        with progress_beat:
            predictor, result = fit(train, o.cap, o.width, o.seconds, o.lr, o.epochs, o.seed, tick=tick)
    finally:
        on_event(Ended("fit"))
    result["estimate"] = estimate(predictor, held, MAX_AUTO_LEN)
    result["train_accuracy"] = estimate(predictor, train, MAX_AUTO_LEN).get("accuracy")
    trained_p = [p for p, _ in train_pairs]
    training = {"prompts": str(o.prompts or "default"), "split": split, "cap": o.cap,
                "width": o.width, "lr": o.lr, "seed": o.seed, "dtype": dtype,
                "max_new_tokens": o.max_new_tokens, "limit_per_category": o.limit,
                "n_train": len(train_pairs), "n_estimate": len(held_pairs),
                "estimate_keys": sorted(apart),
                "used_prompts": used_record(trained_p, source, split),
                "estimate_prompts": used_record([p for p, _ in held_pairs], source,
                                                "tuning" if split else None),
                "numbers": {"estimate": "held-apart prompts, used for neither training nor selection"},
                **{k: v for k, v in result.items()}}
    path = save_artifact(out, predictor, target, prof.target, draft_lm, prof.drafter, tokenizer,
                         prof.name, training)
    return {"path": path, "profile": prof.name, "target": prof.target, "drafter": prof.drafter,
            "dtype": dtype, "result": result, "n_train": len(train_pairs),
            "n_held": len(held_pairs), "answers_resumed": resumed, "gen_s": gen_s,
            "hidden_s": hidden_s, "labels_s": labels_s, "total_s": time.perf_counter() - t_launch}
