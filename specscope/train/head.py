"""The head's part of `mtp train`, once the samples hold their hidden states: the ranking and
rows it drafts over, its start (--init, or the resumed head and its resume state), the settings
the artifact records, training (train/loop.py), the held-out estimate and the artifact."""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from specscope.core.errors import SpecScopeError
from specscope.train.events import Beat, Ended, Note, OnEvent, Progress, Started


def train_head(o, prof, model, target, tokenizer, out: Path, ranking, previous, train_set,
               held_out, estimate_set, facts: dict, on_event: OnEvent) -> dict:
    """Returns {path, result, interrupted, settings, scores, before, rows_cover}."""
    from specscope.core.mtp import INITS, MTPHead, save_artifact
    from specscope.core.mtp_train import evaluate, label_rows
    from specscope.prompts import merge_records, used_record
    from specscope.train.loop import train_loop
    from specscope.train.state import load_state, new_state_id, save_state, state_path

    vocab, vocab_k = target.vocab_size, o.vocab_k
    if previous is not None:
        ranking, vocab_k = previous.ranking, previous.k
    if ranking is None:
        from specscope.core.vocab import count_tokens, rank_tokens, special_ids

        counts = count_tokens(s.ids[s.answer_start:] for s in train_set[:facts["n_train"]])
        ranking = torch.tensor(rank_tokens(counts, vocab, special_ids(tokenizer)), dtype=torch.long)
    if len(ranking) != vocab:
        raise SpecScopeError(f"the ranking covers {len(ranking)} tokens, the target has {vocab}")
    k = min(vocab_k, vocab)
    rows = label_rows(ranking, k, vocab).to(target.device)
    weight = target.head.weight.detach()[ranking[:k].to(target.device)]
    embed = target.embed
    depth, beta, labels, dtype = o.depth, o.beta, o.labels, facts["dtype"]

    head = MTPHead(model).to(target.device, torch.float32)
    autocast = dtype != "float32"
    amp = torch.autocast(target.device.type, dtype=model.dtype, enabled=autocast)
    scores, resume = {}, None
    if previous is not None:
        head.load_state_dict(previous.head.state_dict(), strict=False)
        before = previous.meta.get("training", {})
        init = "resumed"
        state_id = before.get("state_id")
        resume = load_state(state_path(out), state_id, target.device)
        if resume is None:
            state_id = new_state_id()
            on_event(Note(f"--resume: no resume state of this head beside it ({state_path(out).name}): "
                          "the optimizer and the learning-rate schedule start over", warning=True))
    else:
        before, state_id = {}, new_state_id()
        inits = INITS if o.init == "auto" else (o.init,)
        on_event(Started("init", "the head's start (--init)", len(inits) * len(held_out)))
        done = [0]

        def tick() -> None:
            done[0] += 1
            beat()

        beat = Beat(lambda: on_event(Progress("init", done[0])))
        try:
            for name in inits:
                head.init_from(model, name)
                with amp:
                    scores[name] = evaluate(head, embed, weight, rows, held_out, depth, beta,
                                            labels, tick=tick)
        finally:
            on_event(Ended("init"))
        init = max(scores, key=lambda n: scores[n][1][0])
        head.init_from(model, init)
    held_tokens = sum(len(s.ids) - s.answer_start for s in held_out)
    in_rows = sum(int((rows[torch.tensor(s.ids[s.answer_start:], device=rows.device)] >= 0).sum())
                  for s in held_out)
    source, split = facts["source"], facts["split"]
    trained_rec = used_record(facts["trained_p"], source, split)
    corpus_rec = used_record(facts["in_corpus"], None, None)
    ranking_rec = None
    if (o.trimmed or prof.trimmed) and previous is None:
        from specscope.bench.overlap import read_used

        ranking_rec = read_used(o.trimmed or prof.trimmed)
    earlier_used = before.get("used_prompts") if previous is not None else None
    selects = o.keep == "best" or len(scores) > 1  # the tuning numbers chose something
    tuning = "tuning" if split else None
    settings = {"prompts": facts["prompts"], "split": split,
                "n_train": facts["n_train"], "n_corpus": facts["n_corpus"], "n_held": len(held_out),
                "n_estimate": facts["n_estimate"], "estimate_keys": facts["estimate_keys"],
                "train_prompts": trained_rec,
                "selection_prompts": used_record(facts["selection_p"], source, tuning),
                "estimate_prompts": used_record(facts["estimate_p"], source, tuning),
                "corpus_prompts": corpus_rec,
                # what bench refuses to measure: everything trained or selected on, earlier runs'
                # too (the estimate prompts are only measured)
                "used_prompts": merge_records(earlier_used, trained_rec,
                                              used_record(facts["selection_p"]), corpus_rec, ranking_rec),
                "numbers": {
                    "held_loss, held_acceptance, init_scores":
                        ("selection: on the selection prompts, which chose the kept weights "
                         "(--keep best) and the init (--init auto); a maximum, biased up")
                        if selects else "on the selection prompts (nothing was chosen on them)",
                    "estimate_loss, estimate_acceptance":
                        "held-out estimate: prompts used for neither training nor selection"},
                "limit_per_category": o.limit, "max_new_tokens": o.max_new_tokens, "depth": depth,
                "beta": beta, "lr": o.lr, "vocab_k": k, "dtype": dtype, "init": init, "seed": o.seed,
                "labels": labels, "keep": o.keep, "keep_apart": o.keep_apart,
                "held_keys": facts["held_keys"],
                "samples": o.samples, "temperature": o.temperature if o.samples > 1 else None,
                "sampled_by": o.sampled_by if o.samples > 1 else None,
                "max_prompt_tokens": o.max_prompt_tokens,
                "corpus": facts["corpus"], "corpus_tokens": facts["corpus_tokens"],
                "corpus_chunk": o.corpus_chunk,
                "init_scores": {n: [round(v, 4) for v in s[1]] for n, s in scores.items()},
                "state_id": state_id}
    if previous is not None:  # what the earlier runs were, oldest first
        earlier = {key: v for key, v in before.items() if key != "earlier"}
        settings["earlier"] = before.get("earlier", []) + [earlier]
        settings["init_scores"] = before.get("init_scores", {})

    def checkpoint(result: dict) -> Path:
        return save_artifact(out, head, ranking, k, target, prof.target, tokenizer, prof.name,
                             {**settings, **result}, torch.bfloat16 if autocast else torch.float32)

    # the budget's end of training (train/plan.py) stops the run; the schedule runs over that
    # time, or over --tokens when given (then a resumed run equals an uninterrupted one bit for
    # bit: nothing in it depends on the clock)
    until = getattr(o, "train_until", None)
    minutes = o.minutes if until is None else max((until - time.perf_counter()) / 60, 0.01)
    if o.tokens and until is not None:
        minutes = math.inf
    result, interrupted = train_loop(
        head, embed, weight, rows, train_set, held_out, depth, beta, o.lr, minutes, o.tokens, amp,
        o.seed, checkpoint, on_event, labels, before, o.keep, resume,
        lambda state: save_state(state_path(out), state_id, state), until)
    on_event(Note(f"the held-out estimate on {len(estimate_set)} prompts"))
    with amp, Beat(lambda: on_event(Note("  the held-out estimate: still evaluating")), every=20.0):
        # the estimate: once, on the kept weights, on prompts nothing was chosen on
        result["estimate_loss"], result["estimate_acceptance"] = evaluate(
            head, embed, weight, rows, estimate_set, depth, beta, labels)
    path = checkpoint(result)
    return {"path": path, "result": result, "interrupted": interrupted, "settings": settings,
            "scores": scores, "before": before, "rows_cover": in_rows / max(held_tokens, 1),
            "k": k, "selects": selects}
