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

import hashlib
import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from specscope.cli.options import Dtype, Profile, friendly_errors

DEFAULT_VOCAB_K, DEFAULT_HELD = 8192, 4

mtp_app = typer.Typer(help="FastMTP: train a multi-token-prediction head on the target's own output.",
                      no_args_is_help=True, rich_markup_mode=None)


@mtp_app.command("train")
@friendly_errors
def train(
    profile: Profile = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", metavar="FILE", help="Calibration prompts (Spec-Bench JSONL or text, one a line). Default: the packaged set, trained on its calibration split, selected and estimated on its tuning split.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", metavar="N", help="Training prompts per category, from the end of each (the calibration split of a file that has splits).")] = 3,
    keep_apart: Annotated[Optional[int], typer.Option("--keep-apart", metavar="N", help="A file without splits: never train on the first this many prompts of a category (what `bench --limit` measures there). Default 0.")] = None,
    held: Annotated[int, typer.Option("--held", metavar="N", help="Prompts held apart to select on (--keep best, --init auto), and as many others for the held-out estimate (from the tuning split of a file that has splits).")] = DEFAULT_HELD,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", metavar="N", help="Length of the target's answers.")] = 128,
    max_prompt_tokens: Annotated[int, typer.Option("--max-prompt-tokens", metavar="N", help="Skip longer prompts.")] = 768,
    batch: Annotated[int, typer.Option("--batch", metavar="N", help="Prompts per self-distillation batch.")] = 8,
    samples: Annotated[int, typer.Option("--samples", metavar="N", help="Answers per training prompt: the greedy one, and the rest sampled at --temperature (more text from the same prompts; by the target, or --sampled-by drafter).")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", metavar="T", help="Temperature of the sampled answers (--samples > 1).")] = 0.8,
    sampled_by: Annotated[str, typer.Option("--sampled-by", metavar="target|drafter", help="Who writes the sampled answers: the target, or the profile's drafter (a smaller model of the same family: more text for the time; its text is labelled by the target's own distributions, like --corpus, so it needs --labels target).")] = "target",
    minutes: Annotated[float, typer.Option("--minutes", metavar="MIN", help="Training time budget (after the data is ready).")] = 10.0,
    tokens: Annotated[Optional[int], typer.Option("--tokens", metavar="N", help="Stop after this many trained tokens.")] = None,
    depth: Annotated[int, typer.Option("--depth", metavar="J", help="Draft steps unrolled in training.")] = 3,
    beta: Annotated[float, typer.Option("--beta", metavar="B", help="Loss weight decay per step: beta^(j-1).")] = 0.6,
    lr: Annotated[float, typer.Option("--lr", metavar="LR", help="AdamW learning rate.")] = 2e-4,
    vocab_k: Annotated[int, typer.Option("--vocab-k", metavar="K", help="Ranked vocabulary rows the head drafts over.")] = DEFAULT_VOCAB_K,
    init: Annotated[str, typer.Option("--init", metavar="hidden|embed|auto", help="W's start: embed ([0;I]), hidden ([I;0]) or auto (the better on the selection prompts).")] = "auto",
    labels: Annotated[str, typer.Option("--labels", metavar="target|tokens", help="target: the target's next-token distributions at every position (KL); tokens: its answer tokens only (cross-entropy).")] = "target",
    keep: Annotated[str, typer.Option("--keep", metavar="best|last", help="Which weights the artifact gets: best (those with the best acceptance on the selection prompts, evaluated every 90 s; the starting weights count) or last. Either way the reported estimate is on other held-out prompts.")] = "best",
    resume: Annotated[bool, typer.Option("--resume", help="Go on training the head already at --out (its weights, ranking and rows); totals add up.")] = False,
    corpus: Annotated[Optional[list[Path]], typer.Option("--corpus", metavar="FILE", help="More training text, teacher-forced only (no answers generated: much cheaper a token than self-distillation): plain text, or JSONL (each line's text fields: text, content, turns, reference, prompt, response, answer; all its strings if none). Labels are the target's own distributions over it (--labels target). Repeatable.")] = None,
    corpus_tokens: Annotated[Optional[int], typer.Option("--corpus-tokens", metavar="N", help="Use at most this many --corpus tokens.")] = None,
    corpus_chunk: Annotated[int, typer.Option("--corpus-chunk", metavar="N", help="--corpus text is cut into sequences of this many tokens.")] = 512,
    trimmed: Annotated[Optional[Path], typer.Option("--trimmed", metavar="FILE", help="Take the token ranking from this VocabTrim artifact (default: count the answers).")] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the shuffling.")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", metavar="FILE", help="Artifact path (default: the cache, per profile).")] = None,
    dtype: Dtype = None,
) -> None:
    """Train FastMTP's head on the target's own answers; `--method mtp` then drafts with it."""
    import torch
    from rich.console import Console

    from specscope.core.errors import SpecScopeError
    from specscope.core.lm import CachedLM
    from specscope.core.models import eos_ids, load_causal_lm, load_tokenizer
    from specscope.core.mtp import INITS, MTPHead, artifact_path, load_artifact, save_artifact
    from specscope.core.mtp_train import LABELS, Sample, evaluate, label_rows
    from specscope.core.vocab import model_fingerprint
    from specscope.frontends.loading import check_options, quiet_libraries
    from specscope.mtp_loop import bars, hidden_cached, self_distil_cached, train_loop
    from specscope.profiles import load_profile
    from specscope.prompts import (has_splits, merge_records, prompt_source, read_prompts,
                                   select_prompts, used_record)
    from specscope.session import encode_prompt

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
    if min(batch, depth, max_new_tokens, vocab_k, max_prompt_tokens, samples) < 1 or held < 1:
        raise SpecScopeError("--batch, --depth, --held, --max-new-tokens, --vocab-k, --samples "
                             "and --max-prompt-tokens must be >= 1")
    if corpus and labels != "target":
        raise SpecScopeError("--corpus needs --labels target (its text has no answer tokens)")
    if corpus_chunk < 8 or (corpus_tokens is not None and corpus_tokens < 1):
        raise SpecScopeError("--corpus-chunk must be >= 8 and --corpus-tokens >= 1")
    texts = read_corpus(corpus or [])
    in_corpus = corpus_prompts(corpus or [])
    if sampled_by not in ("target", "drafter"):
        raise SpecScopeError(f"--sampled-by must be target or drafter, got '{sampled_by}'")
    if sampled_by == "drafter" and labels != "target":
        raise SpecScopeError("--sampled-by drafter needs --labels target (the drafter's tokens are "
                             "not the target's)")
    if samples > 1 and temperature <= 0:
        raise SpecScopeError(f"--temperature must be > 0 for sampled answers, got {temperature:g}")
    if minutes <= 0 or (tokens is not None and tokens < 1) or not 0 < beta <= 1 or lr <= 0:
        raise SpecScopeError("--minutes and --lr must be > 0, --tokens >= 1, --beta in (0, 1]")
    prof = load_profile(profile)
    if sampled_by == "drafter" and not prof.drafter:
        raise SpecScopeError(f"--sampled-by drafter: profile '{prof.name}' has no drafter")
    check_options(prof, None, dtype, None)
    dtype = dtype or prof.dtype
    source = prompt_source(prompts)
    everything = read_prompts(source)
    split = "calibration" if has_splits(everything) else None
    chosen = select_prompts(everything, None, limit, source, from_end=True, keep_apart=keep_apart,
                            split=split)
    # the prompts held apart for selection and the estimate: the tuning split, or (a file without
    # splits) spread over the chosen prompts
    pool = select_prompts(everything, None, None, source, split="tuning") if split else None
    if split and len(pool) < 2 * held:
        raise SpecScopeError(f"{len(pool)} tuning prompts: --held {held} needs {2 * held}")
    if split:  # before any model loads: the selection and estimate prompts come from the tuning split
        check_corpus(in_corpus, pool, "the tuning split (where the selection and estimate prompts come from)")
    if not split and len(chosen) <= 2 * held:
        raise SpecScopeError(f"{len(chosen)} calibration prompts: need more than twice --held {held} "
                             "(the selection and the estimate prompts are held apart)")
    out = Path(out or artifact_path(prof.name)).expanduser()
    if resume and not out.is_file():
        raise SpecScopeError(f"--resume: no head at {out} (train one first, or name it with --out)")
    ranking = None
    if trimmed or prof.trimmed:
        from specscope.core.vocab import read_trimmed

        ranking = read_trimmed(trimmed or prof.trimmed).ranking
    quiet_libraries()
    console = Console(stderr=True)
    torch.manual_seed(seed)

    t_start = time.perf_counter()
    with bars(console) as progress:
        tokenizer = load_tokenizer(prof.target, progress)
        model = load_causal_lm(prof.target, dtype, prof.device, progress)
    target = CachedLM(model)
    previous = load_artifact(out, target, prof.target, tokenizer) if resume else None
    if previous is not None:  # say what a resumed head keeps from its first run
        first = previous.meta.get("training", {})
        if not first.get("estimate_keys"):
            raise SpecScopeError(f"--resume: {out} was trained before its held-out estimate was kept "
                                 "apart from its selection prompts; train a new head (no --resume)")
        ignored = [name for name, given, kept in (
            ("--vocab-k", vocab_k if vocab_k != DEFAULT_VOCAB_K else None, previous.k),
            ("--held", held if held != DEFAULT_HELD else None, first.get("n_held")),
            ("--trimmed", trimmed, None)) if given is not None and given != kept]
        if ignored:
            console.print(f"[yellow]--resume keeps the earlier head's ranking, rows and held-apart "
                          f"prompts: {', '.join(ignored)} ignored[/yellow]")
    eos = eos_ids(tokenizer, model, prof.eos_tokens)

    def encode(selection):
        pairs = [(p, encode_prompt(tokenizer, p.text, prof.chat_template, prof.system_prompt))
                 for p in selection]
        return [(p, ids) for p, ids in pairs if len(ids) <= max_prompt_tokens], \
            sum(len(ids) > max_prompt_tokens for _, ids in pairs)

    encoded, skipped = encode(chosen)
    held_from, _ = encode(pool) if split else (encoded, 0)
    if len(held_from) < 2 * held + (0 if split else 1) or not encoded:
        raise SpecScopeError(f"only {len(encoded)} prompts of at most {max_prompt_tokens} tokens")
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
    # one answers file per target, dtype and length: answers are keyed by their prompt inside it,
    # so another --limit or prompt file reuses every answer it shares
    data_file = answers_file(out, prof.name, [fp["head_sha256"], dtype, max_new_tokens])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos or {0})

    t0 = time.perf_counter()
    answers, resumed = self_distil_cached(model, [ids for _, ids in encoded], max_new_tokens, eos,
                                          pad, batch, data_file, console)
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
    by_drafter = samples > 1 and sampled_by == "drafter"
    writer, writer_file, sampled_tokens = model, data_file, 0
    if by_drafter:
        with bars(console) as progress:
            writer = load_causal_lm(prof.drafter, dtype, prof.device, progress)
        drafter_sha = model_fingerprint(CachedLM(writer), prof.drafter)["head_sha256"]
        writer_file = answers_file(out, f"{prof.name}-drafter",
                                   [fp["head_sha256"], drafter_sha, dtype, max_new_tokens])
    for n in range(1, samples):
        more, more_resumed = self_distil_cached(writer, train_prompts, max_new_tokens, eos, pad, batch,
                                                writer_file, console, n, temperature,
                                                f"the {sampled_by}")
        # the drafter's text has no answer part: every position is labelled by the target's own
        # distribution, none by the drafter's tokens (as --corpus text)
        # the prompt is trained on once, with its greedy answer: here it is context only
        train_set += [Sample(p + ans, len(p + ans) if by_drafter else len(p), prompt_len=len(p),
                             loss_from=max(0, len(p) - 2))
                      for p, ans in zip(train_prompts, more)]
        resumed += more_resumed
        sampled_tokens += sum(map(len, more))
    del writer
    gen_s = time.perf_counter() - t0
    extra = corpus_samples(tokenizer, texts, corpus_chunk, corpus_tokens)
    n_answers = len(train_set)
    train_set += extra
    samples_all = train_set + held_out + estimate_set

    t0 = time.perf_counter()
    # cached per target, dtype and device: a --resume or a run with more samples computes only
    # the sequences it has not seen
    hidden_dir = out.parent / "hidden" / answers_file(out, prof.name, hidden_key(model, fp, dtype)).stem
    hidden_new, hidden_loaded = hidden_cached(model, samples_all, hidden_dir, console)
    hidden_s = time.perf_counter() - t0

    vocab = target.vocab_size
    if previous is not None:
        ranking, vocab_k = previous.ranking, previous.k
    if ranking is None:
        from specscope.core.vocab import count_tokens, rank_tokens, special_ids

        counts = count_tokens(s.ids[s.answer_start:] for s in train_set[:n_answers])
        ranking = torch.tensor(rank_tokens(counts, vocab, special_ids(tokenizer)), dtype=torch.long)
    if len(ranking) != vocab:
        raise SpecScopeError(f"the ranking covers {len(ranking)} tokens, the target has {vocab}")
    k = min(vocab_k, vocab)
    rows = label_rows(ranking, k, vocab).to(target.device)
    weight = target.head.weight.detach()[ranking[:k].to(target.device)]
    embed = target.embed

    head = MTPHead(model).to(target.device, torch.float32)
    autocast = dtype != "float32"
    amp = torch.autocast(target.device.type, dtype=model.dtype, enabled=autocast)
    scores = {}
    if previous is not None:
        head.load_state_dict(previous.head.state_dict(), strict=False)
        before = previous.meta.get("training", {})
        init = "resumed"
    else:
        before = {}
        for name in INITS if init == "auto" else (init,):
            head.init_from(model, name)
            with amp:
                scores[name] = evaluate(head, embed, weight, rows, held_out, depth, beta, labels)
        init = max(scores, key=lambda n: scores[n][1][0])
        head.init_from(model, init)
    held_tokens = sum(len(s.ids) - s.answer_start for s in held_out)
    in_rows = sum(int((rows[torch.tensor(s.ids[s.answer_start:], device=rows.device)] >= 0).sum())
                  for s in held_out)
    trained_p = [p for p, ids in encoded if prompt_key(ids) not in held_keys | estimate_keys]
    trained_rec = used_record(trained_p, source, split)
    corpus_rec = used_record(in_corpus, None, None)
    ranking_rec = None
    if (trimmed or prof.trimmed) and previous is None:
        from specscope.bench.overlap import read_used

        ranking_rec = read_used(trimmed or prof.trimmed)
    earlier_used = (previous.meta.get("training", {}).get("used_prompts")
                    if previous is not None else None)
    selects = keep == "best" or len(scores) > 1  # the tuning numbers chose something
    settings = {"prompts": str(prompts or "default"), "split": split,
                "n_train": n_answers, "n_corpus": len(extra), "n_held": len(held_out),
                "n_estimate": len(estimate_set), "estimate_keys": sorted(estimate_keys),
                "train_prompts": trained_rec,
                "selection_prompts": used_record(selection_p, source, "tuning" if split else None),
                "estimate_prompts": used_record(estimate_p, source, "tuning" if split else None),
                "corpus_prompts": corpus_rec,
                # what bench refuses to measure: everything trained or selected on, earlier runs'
                # too (the estimate prompts are only measured)
                "used_prompts": merge_records(earlier_used, trained_rec,
                                              used_record(selection_p), corpus_rec, ranking_rec),
                "numbers": {
                    "held_loss, held_acceptance, init_scores":
                        ("selection: on the selection prompts, which chose the kept weights "
                         "(--keep best) and the init (--init auto); a maximum, biased up")
                        if selects else "on the selection prompts (nothing was chosen on them)",
                    "estimate_loss, estimate_acceptance":
                        "held-out estimate: prompts used for neither training nor selection"},
                "limit_per_category": limit, "max_new_tokens": max_new_tokens, "depth": depth,
                "beta": beta, "lr": lr, "vocab_k": k, "dtype": dtype, "init": init, "seed": seed,
                "labels": labels, "keep": keep, "keep_apart": keep_apart, "held_keys": sorted(held_keys),
                "samples": samples, "temperature": temperature if samples > 1 else None,
                "sampled_by": sampled_by if samples > 1 else None,
                "max_prompt_tokens": max_prompt_tokens,
                "corpus": [{"path": str(c), "sha256": hashlib.sha256(t.encode()).hexdigest()}
                           for c, t in texts],
                "corpus_tokens": sum(len(s.ids) for s in extra), "corpus_chunk": corpus_chunk,
                "init_scores": {n: [round(v, 4) for v in s[1]] for n, s in scores.items()}}
    if previous is not None:  # what the earlier runs were, oldest first
        earlier = {key: v for key, v in before.items() if key != "earlier"}
        settings["earlier"] = before.get("earlier", []) + [earlier]
        settings["init_scores"] = before.get("init_scores", {})

    def checkpoint(result: dict) -> Path:
        return save_artifact(out, head, ranking, k, target, prof.target, tokenizer, prof.name,
                             {**settings, **result}, torch.bfloat16 if autocast else torch.float32)

    result, interrupted = train_loop(head, embed, weight, rows, train_set, held_out, depth, beta,
                                     lr, minutes, tokens, amp, seed, checkpoint, console, labels, before,
                                     keep)
    with amp:  # the estimate: once, on the kept weights, on prompts nothing was chosen on
        result["estimate_loss"], result["estimate_acceptance"] = evaluate(
            head, embed, weight, rows, estimate_set, depth, beta, labels)
    path = checkpoint(result)

    report = Console(highlight=False)
    report.print(f"[bold]FastMTP head[/bold] for {prof.target} ({dtype})"
                 + ("  [yellow]interrupted: kept the last weights[/yellow]" if interrupted else ""))
    sampled = (f" ({len(train_prompts)} x {samples - 1} sampled at T={temperature:g}"
               f"{' by the drafter' if by_drafter else ''}, {sampled_tokens} tokens)"
               if samples > 1 else "")
    report.print(f"  data: {n_answers} training answers{sampled} + {len(held_out)} selection and "
                 f"{len(estimate_set)} estimate prompts held apart"
                 f"{f' (calibration and tuning splits)' if split else ''}"
                 f"{f' ({skipped} longer than {max_prompt_tokens} tokens skipped)' if skipped else ''}, "
                 f"{sum(len(s.ids) - s.answer_start for s in samples_all)} answer tokens; "
                 f"self-distillation {gen_s:.0f} s"
                 f"{f' ({resumed} answers from {data_file.parent})' if resumed else ''}, hidden states {hidden_s:.0f} s"
                 f" ({hidden_new} sequences computed, {hidden_loaded} read from {hidden_dir})")
    if extra:
        report.print(f"  corpus: {sum(len(s.ids) for s in extra)} tokens in {len(extra)} sequences "
                     f"of at most {corpus_chunk}, from {', '.join(str(c) for c, _ in texts)}")
    for name, (loss, acc) in scores.items():
        mark = "  <- chosen" if name == init else ""
        report.print(f"  init W = {'[0;I]' if name == 'embed' else '[I;0]'} ({name}): selection loss "
                     f"{loss:.2f}, greedy chain acceptance {_fmt(acc)}{mark}")
    if previous is not None:
        report.print(f"  resumed from {out}: {before.get('steps', 0)} steps, {before.get('tokens', 0)} "
                     f"tokens, {before.get('seconds', 0):.0f} s before this run; estimate "
                     f"acceptance was {_fmt(before.get('estimate_acceptance', []))}")
    report.print(f"  training ({labels} labels): {result['seconds']:.0f} s, {result['steps']} steps, "
                 f"{result['tokens']} positions in all, loss {result['train_loss']:.3f}")
    what = ("a selection number: the weights or the init were chosen on it, so it is biased up"
            if selects else "nothing was chosen on it")
    report.print(f"  selection ({_n(len(held_out), 'prompt')}; {what}): loss {result['held_loss']:.3f}, "
                 f"greedy chain acceptance at steps 1..{depth}: {_fmt(result['held_acceptance'])}")
    report.print(f"  held-out estimate ({_n(len(estimate_set), 'prompt')} used for neither training nor "
                 f"selection): loss {result['estimate_loss']:.3f}, greedy chain acceptance at steps "
                 f"1..{depth}: {_fmt(result['estimate_acceptance'])}")
    if "last" in result:
        report.print(f"  kept the weights of step {result['kept_step']} (best selection acceptance; "
                     f"--keep last for the last): the last evaluated weights had loss "
                     f"{result['last']['held_loss']:.3f}, acceptance {_fmt(result['last']['held_acceptance'])}")
    report.print(f"  vocabulary: {k} ranked rows cover {in_rows / max(held_tokens, 1):.1%} of selection answer tokens")
    report.print(f"  total {time.perf_counter() - t_start:.0f} s; wrote {path}")
    report.print(f"  use it: specscope generate \"...\" --profile {prof.name} --method mtp -k 3")
    if interrupted:
        raise typer.Exit(130)


def read_corpus(paths: list[Path]) -> list[tuple[Path, str]]:
    """(path, text) per --corpus file: plain text as it is; JSONL, one document a line: the
    line's text fields (TEXT_FIELDS: a Spec-Bench line's turns and reference) where it has any,
    else every string field."""
    from specscope.core.errors import SpecScopeError

    out = []
    for path in paths:
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecScopeError(f"--corpus: file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise SpecScopeError(f"--corpus: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
        if path.suffix in (".jsonl", ".json"):
            docs = []
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    docs.append("\n\n".join(_strings(_text_fields(json.loads(line)))))
                except ValueError:
                    raise SpecScopeError(f"--corpus: {path} line {n} is not JSON") from None
            text = "\n\n".join(d for d in docs if d)
        if not text.strip():
            raise SpecScopeError(f"--corpus: no text in {path}")
        out.append((path, text))
    return out


TEXT_FIELDS = ("text", "content", "turns", "reference", "prompt", "response", "answer")


def _text_fields(value):
    """A JSON object's text fields (ids and category names are not text to learn from), or the
    whole value when it has none."""
    if isinstance(value, dict) and any(k in value for k in TEXT_FIELDS):
        return [value[k] for k in TEXT_FIELDS if k in value]
    return value


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def corpus_samples(tokenizer, texts: list[tuple[Path, str]], chunk: int, limit: int | None):
    """--corpus text as training sequences with no answer part (every position labelled by the
    target's own distribution): tokenized as it is, cut into `chunk`-token pieces, at most
    `limit` tokens in all."""
    from specscope.core.mtp_train import Sample, corpus_chunks

    out = []
    left = limit
    for _, text in texts:
        for piece in corpus_chunks(tokenizer.encode(text, add_special_tokens=False), chunk, left):
            out.append(Sample(piece, len(piece)))
            if left is not None:
                left -= len(piece)
    return out


def answers_file(out: Path, stem: str, key: list) -> Path:
    """The cache of generated answers beside the artifact: one file per writer model, dtype and
    answer length (`key`); answers are keyed by their prompt inside it."""
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    return out.parent / "data" / f"{stem}-{digest}.json"


def hidden_key(model, fp: dict, dtype: str) -> list:
    """What the target's hidden states depend on: its identity (source, shape, head rows), a
    checksum of its final norm (which fine-tuning the body moves too), dtype and device."""
    norm = getattr(getattr(model, "base_model", None), "norm", None)
    body = (hashlib.sha256(norm.weight.detach().float().cpu().numpy().tobytes()).hexdigest()[:16]
            if getattr(norm, "weight", None) is not None else "")
    return [fp, body, dtype, next(model.parameters()).device.type]


def prompt_key(ids: list[int]) -> str:
    from specscope.mtp_loop import ids_digest

    return ids_digest(ids)


def held_apart(prompt_ids: list[list[int]], held: int) -> tuple[set[str], set[str]]:
    """(selection, estimate) keys: 2 x `held` prompts spread evenly over `prompt_ids` (every
    category gets its share), taken in turn for the selection and the estimate."""
    step = len(prompt_ids) / (2 * held)
    picked = [prompt_key(prompt_ids[int(i * step)]) for i in range(2 * held)]
    return set(picked[0::2]), set(picked[1::2])


def check_corpus(in_corpus: list, held: list, what: str) -> None:
    """Refuse a --corpus that holds prompts the head is selected or estimated on: it would train
    on them."""
    from specscope.core.errors import SpecScopeError

    clash = {p.digest for p in in_corpus} & {p.digest for p in held}
    if clash:
        ids = [p.id for p in held if p.digest in clash]
        raise SpecScopeError(f"--corpus holds {len(ids)} prompts of {what} (ids "
                             f"{', '.join(ids[:8])}{' ...' if len(ids) > 8 else ''}): it would train "
                             "on them; leave them out of the corpus")


def corpus_prompts(paths: list[Path]) -> list:
    """The Spec-Bench prompts (lines with 'turns') of --corpus JSONL files, as Prompts: their
    ids and text digests are recorded, and checked against the prompts held apart."""
    from specscope.prompts import Prompt

    out = []
    for path in paths:
        path = Path(path).expanduser()
        if path.suffix not in (".jsonl", ".json") or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                continue  # read_corpus says so
            turns = row.get("turns") if isinstance(row, dict) else None
            turns = [turns] if isinstance(turns, str) else turns
            if isinstance(turns, list) and turns and isinstance(turns[0], str):
                out.append(Prompt(str(row.get("question_id", f"{path.name}:{n}")),
                                  str(row.get("category", "corpus")), turns[0]))
    return out


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _fmt(acc: list[float]) -> str:
    return " ".join(f"{a:.2f}" for a in acc)

