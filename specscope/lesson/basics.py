"""Chapters 1-3: plain decoding, one draft-verify step, and why the output does not change."""
from __future__ import annotations

from rich.text import Text

from specscope.lesson.runs import Lesson, Page, answer_text, ordinal, run, step_table, tok

PROMPT = "Write a Python function that returns the n-th Fibonacci number."
SAMPLING_T = 0.8


def plain_decoding(lesson: Lesson) -> Page:
    r = run(lesson, "plain", PROMPT, method="ar", temperature=0.0)
    s = r.summary
    page = Page(1, "Plain decoding: one target pass per token", runs={"plain": r})
    page.body = [Text(f"prompt: {PROMPT}", "dim"), answer_text(r), Text(),
                 Text(f"tokens {s.new_tokens} · target passes {s.steps} · prefill "
                      f"{s.prefill_s * 1e3:.1f} ms", "bold")]
    for _, v in r.steps()[:5]:
        page.body.append(Text(f"  pass {v.step + 1}: {tok(v.token_text)}  {v.verify_s * 1e3:.1f} ms"))
    page.caption = [
        f"Plain decoding made {s.new_tokens} tokens in {s.steps} target passes: one full pass "
        f"of the big model for every token.",
        f"Each token cost {r.ms_per_token():.1f} ms ({r.tokens_per_s():.1f} tokens/s), after a "
        f"{s.prefill_s * 1e3:.1f} ms pass over the prompt.",
        "Speculative decoding breaks the one-pass-per-token rule.",
    ]
    return page


def pick_step(r):
    """The step that teaches most: some accepted, then a rejection; else any rejection; else the first."""
    steps = [(d, v) for d, v in r.steps() if d.tokens]
    for good in (lambda v: v.n_accepted >= 1 and v.first_rejected is not None,
                 lambda v: v.first_rejected is not None, lambda v: True):
        for d, v in steps:
            if good(v):
                return d, v
    return r.steps()[0]


def draft_and_verify(lesson: Lesson) -> Page:
    r = run(lesson, "draft k=5", PROMPT, method="draft", draft_len=5, temperature=0.0)
    s = r.summary
    d, v = pick_step(r)
    page = Page(2, "A drafter proposes, the target checks all at once", runs={"draft": r})
    page.body = [Text(f"step {v.step + 1} of {s.steps}: the drafter's chain, q = drafter's "
                      f"probability, p = target's", "bold"), *step_table(d, v), Text(),
                 Text("the answer: ", "dim") + answer_text(r)]
    caption = [f"Step {v.step + 1}: the drafter proposed {len(d.tokens)} tokens and the target "
               f"scored all of them in one pass ({v.verify_s * 1e3:.1f} ms)."]
    i = v.first_rejected
    if i is not None:
        caption.append(
            f"It agreed with the first {v.n_accepted}; the drafter's {ordinal(i + 1)} token "
            f"{tok(d.texts[i])} was rejected: q {d.q[i]:.2f}, p {v.p[i]:.2f}. The target wrote "
            f"{tok(v.token_text)} there: {len(v.emitted)} tokens from one pass.")
    else:
        caption.append(f"It accepted all {len(d.tokens)} and added its own bonus token "
                       f"{tok(v.token_text)}: {len(v.emitted)} tokens from one pass.")
    caption.append(f"Whole answer: {s.new_tokens} tokens in {s.steps} target passes "
                   f"(tau {s.tau:.2f} tokens a pass), acceptance {s.acceptance_rate:.0%}.")
    page.caption = caption
    return page


def first_sampled_rejection(r):
    for d, v in r.steps():
        i = v.first_rejected
        if i is not None and d.q[i] is not None:
            return d, v, i
    return None


def same_output(lesson: Lesson) -> Page:
    plain = run(lesson, "plain", PROMPT, method="ar", temperature=0.0)
    spec = run(lesson, "draft k=5", PROMPT, method="draft", draft_len=5, temperature=0.0)
    sampled = run(lesson, f"draft t={SAMPLING_T}", PROMPT, method="draft", draft_len=5,
                  temperature=SAMPLING_T, seed=0)
    a, b = plain.summary.token_ids, spec.summary.token_ids
    same = sum(x == y for x, y in zip(a, b))
    page = Page(3, "Why the output does not change",
                runs={"plain": plain, "draft": spec, "sampled": sampled})
    page.body = [Text("plain:       ", "dim") + answer_text(plain),
                 Text("speculative: ", "dim") + answer_text(spec), Text()]
    page.caption = [f"Greedy: a draft token is kept only when it is the target's own top choice "
                    f"(argmax), so the answer is the target's: {same} of {len(a)} tokens equal "
                    f"to plain decoding."]
    if same < max(len(a), len(b)):
        page.caption.append(f"They part at token {same + 1}: in {lesson.session.profile.dtype} "
                            f"the batched pass can round differently after a near tie.")
    found = first_sampled_rejection(sampled)
    if found is None:
        page.caption.append(f"Sampling (temperature {SAMPLING_T}): every drafted token was "
                            f"accepted in this run, so there is no rejection to show.")
        return page
    d, v, i = found
    q, p = d.q[i], v.p[i]
    page.body += [Text(f"sampling at temperature {SAMPLING_T}, step {v.step + 1}:", "bold"),
                  *step_table(d, v)]
    page.caption.append(
        f"Sampling (temperature {SAMPLING_T}): the drafter's {ordinal(i + 1)} token "
        f"{tok(d.texts[i])} in step {v.step + 1} was rejected: q {q:.2f}, p {p:.2f}, kept with "
        f"probability min(1, p/q) = {min(1.0, p / q):.2f}. The target then drew "
        f"{tok(v.token_text)} from the residual max(0, p - q): the output follows the "
        f"target's distribution exactly.")
    return page
