"""Chapters 4-5: why a longer draft can be slower, and cheaper drafting (VocabTrim)."""
from __future__ import annotations

from rich.text import Text

from specscope.lesson.basics import PROMPT
from specscope.lesson.runs import Lesson, Page, ordinal, run

LENGTHS = (2, 5, 12)


def per_step_ms(seconds: float, steps: int) -> float:
    return seconds / steps * 1e3 if steps else 0.0


def draft_length(lesson: Lesson) -> Page:
    runs = {f"k={k}": run(lesson, f"k={k}", PROMPT, method="draft", draft_len=k, temperature=0.0)
            for k in LENGTHS}
    page = Page(4, "Why a longer draft can be slower", runs=runs)
    page.body = [Text(f"{'k':>3} {'accept':>6} {'tau':>5} {'draft/step':>11} {'verify/step':>12} "
                      f"{'tok/s':>7}", "bold")]
    for k in LENGTHS:
        r = runs[f"k={k}"]
        s = r.summary
        page.body.append(Text(f"{k:>3} {s.acceptance_rate:>6.0%} {s.tau:>5.2f} "
                              f"{per_step_ms(s.draft_s, s.steps):>8.1f} ms "
                              f"{per_step_ms(s.verify_s, s.steps):>9.1f} ms {r.tokens_per_s():>7.1f}"))
    page.body.append(Text())
    page.body.append(Text("acceptance by draft position (%):", "bold"))
    for k in LENGTHS:
        pos = runs[f"k={k}"].summary.per_position
        page.body.append(Text(f"k {k:>2}: " + " ".join(f"{x * 100:3.0f}" for x in pos)))
    long, short = runs[f"k={LENGTHS[-1]}"].summary, runs[f"k={LENGTHS[0]}"].summary
    pos = long.per_position
    best = max(LENGTHS, key=lambda k: runs[f"k={k}"].tokens_per_s())
    speeds = ", ".join(f"k {k}: {runs[f'k={k}'].tokens_per_s():.1f}" for k in LENGTHS)
    page.caption = [
        f"At k {LENGTHS[-1]} the drafter drafted {long.drafted / long.steps:.1f} tokens a step and "
        f"the target kept {long.accepted / long.steps:.1f}; acceptance fell from {pos[0]:.0%} at "
        f"the 1st position to {pos[-1]:.0%} at the {ordinal(len(pos))}.",
        f"Every drafted token costs a drafter pass: drafting took "
        f"{per_step_ms(short.draft_s, short.steps):.1f} ms a step at k {LENGTHS[0]} and "
        f"{per_step_ms(long.draft_s, long.steps):.1f} ms at k {LENGTHS[-1]}.",
        f"Tokens/s: {speeds}; the fastest here is k {best}. Drafting past where tokens are "
        f"accepted only adds cost.",
    ]
    return page


def cheaper_drafting(lesson: Lesson) -> Page:
    session = lesson.session
    vocab = session.vocab
    page = Page(5, "Cheaper drafting: VocabTrim")
    if vocab is None:
        full = run(lesson, "full head", PROMPT, method="draft", draft_len=5, temperature=0.0)
        page.runs = {"full": full}
        page.body = [Text(f"full head ({session.drafter_lm.vocab_size} rows): "
                          f"{cost_ms(full):.2f} ms per drafted token", "bold")]
        page.caption = [
            f"Drafting one token cost {cost_ms(full):.2f} ms with the drafter's full LM head of "
            f"{session.drafter_lm.vocab_size} rows.",
            f"No trimmed head was found: `specscope trim --top-k N -p {session.profile.name}` "
            f"makes one (or pass --trimmed PATH), then rerun this chapter to compare.",
        ]
    else:
        rows = len(vocab.ranking)
        full = run(lesson, "full head", PROMPT, method="draft", draft_len=5, temperature=0.0,
                   vocab_top_k=rows)
        trimmed = run(lesson, "trimmed head", PROMPT, method="draft", draft_len=5,
                      temperature=0.0, vocab_top_k=vocab.k)
        page.runs = {"full": full, "trimmed": trimmed}
        f, t = full.summary, trimmed.summary
        page.body = [Text(f"{'head':<14} {'rows':>7} {'ms/drafted':>10} {'r':>6} {'accept':>6}", "bold")]
        for name, r, n in (("full", full, rows), ("trimmed", trimmed, vocab.k)):
            s = r.summary
            page.body.append(Text(f"{name:<14} {n:>7} {cost_ms(r):>10.2f} {s.param_ratio:>6.3f} "
                                  f"{s.acceptance_rate:>6.0%}"))
        page.caption = [
            f"VocabTrim keeps the {vocab.k} of {rows} head rows the target uses most: a drafted "
            f"token cost {cost_ms(full):.2f} ms with the full head and {cost_ms(trimmed):.2f} ms "
            f"trimmed (drafter/target weights read r {f.param_ratio:.3f} -> {t.param_ratio:.3f}).",
            f"Acceptance went {f.acceptance_rate:.0%} -> {t.acceptance_rate:.0%}: tokens outside "
            f"the kept rows can no longer be drafted, and verification keeps the output exact.",
        ]
    if lesson.draft_quant is None:
        page.caption.append("A quantized drafter (--draft-quant) is not in this build, so only "
                            "VocabTrim is shown.")
    return page


def cost_ms(r) -> float:
    """Drafting time per drafted token, in ms."""
    s = r.summary
    return s.draft_s / s.drafted * 1e3 if s.drafted else 0.0
