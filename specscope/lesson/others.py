"""Chapter 6: other drafters where they shine: lookup, the phrase pool, and trees."""
from __future__ import annotations

from rich.text import Text

from specscope.core.tree import children
from specscope.frontends.marks import step_marks
from specscope.lesson.basics import PROMPT
from specscope.lesson.runs import Lesson, Page, fresh, run, tok

SUMMARY = ("Summarize in two sentences: Speculative decoding speeds up language models. A small "
           "draft model proposes several tokens, and the large target model checks all of them "
           "in one forward pass. The target keeps the longest prefix it agrees with and adds one "
           "token of its own, so the output is exactly what the target alone would write.")
REPEAT = "List three uses of a hash map in Python."


def branch(r):
    """The first step where the tree drafted siblings: (drafted, verified, parent, [children])."""
    for d, v in r.steps():
        for parent, kids in sorted(children(d.parents).items()):
            if len(kids) >= 2:
                return d, v, parent, kids
    return None


def stats_line(name: str, r) -> Text:
    s = r.summary
    return Text(f"{name:<15} tau {s.tau:.2f} · accepted {s.accepted}/{s.drafted} "
                f"({s.acceptance_rate:.0%}) · {s.steps} passes")


def other_drafters(lesson: Lesson) -> Page:
    lookup = run(lesson, "lookup", SUMMARY, method="lookup", draft_len=5, temperature=0.0)
    page = Page(6, "Other drafters where they shine", runs={"lookup": lookup})
    ls = lookup.summary
    matched = sum(1 for d, _ in lookup.steps() if d.tokens)
    page.body = [Text("prompt lookup on a summary (copies from the prompt, no model)", "bold"),
                 stats_line("lookup", lookup)]
    page.caption = [f"Lookup copies what followed the last words earlier in the text: on a summary "
                    f"it found a match in {matched} of {ls.steps} steps and the target kept "
                    f"{ls.accepted} of {ls.drafted} copied tokens (tau {ls.tau:.2f}), with no "
                    f"draft model at all."]
    if not lesson.has_drafter:
        page.caption.append("This profile has no draft model: the phrase pool and trees need one.")
        return page

    fresh(lesson, "pool")
    first = run(lesson, "pool, 1st ask", REPEAT, method="pool", draft_len=5, temperature=0.0)
    again = run(lesson, "pool, 2nd ask", REPEAT, method="pool", draft_len=5, temperature=0.0)
    page.runs.update({"pool first": first, "pool again": again})
    f, a = first.summary, again.summary
    page.body += [Text(), Text(f"the phrase pool, the same request twice: {REPEAT}", "bold"),
                  stats_line("pool, 1st time", first), stats_line("pool, 2nd time", again)]
    page.caption.append(f"The phrase pool remembers what the target wrote: asked the same thing "
                        f"twice, tau went {f.tau:.2f} -> {a.tau:.2f} and acceptance "
                        f"{f.acceptance_rate:.0%} -> {a.acceptance_rate:.0%}.")

    tree = run(lesson, "tree", PROMPT, method="tree", draft_len=5, temperature=0.0)
    page.runs["tree"] = tree
    page.body += [Text(), Text("a tree where the drafter is unsure", "bold"), stats_line("tree", tree)]
    found = branch(tree)
    if found is None:
        page.caption.append(f"Trees: the drafter was sure at every step of this run, so it "
                            f"drafted plain chains (tau {tree.summary.tau:.2f}).")
        return page
    d, v, parent, kids = found
    accepted, _, _ = step_marks(v)
    where = "at the start" if parent < 0 else f"after {tok(d.texts[parent])}"
    tried = " and ".join(f"{tok(d.texts[k])} (q {d.q[k]:.2f})" for k in kids[:2])
    taken = [k for k in kids if accepted[k]]
    outcome = (f"the target took {tok(d.texts[taken[0]])}" if taken
               else f"the target took neither and wrote {tok(v.token_text)}")
    for k in kids:
        mark = "✓" if accepted[k] else "✗"
        page.body.append(Text(f"  step {v.step + 1}, {where}: {mark} {tok(d.texts[k])}  "
                              f"q {d.q[k]:.2f}  p {v.p[k]:.2f}", "green" if accepted[k] else "red"))
    page.caption.append(f"Trees: in step {v.step + 1}, {where}, the drafter was unsure and tried "
                        f"{tried}; {outcome}, all in one target pass (tau {tree.summary.tau:.2f}).")
    return page
