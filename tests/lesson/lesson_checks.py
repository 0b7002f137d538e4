"""Check a chapter's caption against the events of the runs it describes.

Every number a caption states is parsed back and recomputed here from the raw events (not from
the chapter's own helpers or the core's Stats), so a caption that drifts from its run fails.
"""
import re

from specscope.core.events import Drafted, Finished, Started, Verified


def steps(run):
    out, drafted = [], None
    for e in run.events:
        if isinstance(e, Drafted):
            drafted = e
        elif isinstance(e, Verified):
            out.append((drafted, e))
    return out


def totals(run):
    st = steps(run)
    emitted = sum(len(v.emitted) for _, v in st)
    drafted = sum(len(d.tokens) for d, _ in st)
    accepted = sum(v.n_accepted for _, v in st)
    busy = sum(v.draft_s + v.verify_s for _, v in st)
    return dict(steps=len(st), emitted=emitted, drafted=drafted, accepted=accepted, busy=busy,
                draft_s=sum(v.draft_s for _, v in st), tps=emitted / busy)


def find(pattern, text):
    m = re.search(pattern, text)
    assert m, f"caption lacks {pattern!r}:\n{text}"
    return m.groups()


def squash(s):
    return "".join(s.split())


def caption(page):
    return " ".join(page.caption)


def check_1(page):
    c, t = caption(page), totals(page.runs["plain"])
    n, passes = find(r"made (\d+) tokens in (\d+) target passes", c)
    assert (int(n), int(passes)) == (t["emitted"], t["steps"]) and t["emitted"] == t["steps"]
    assert all(not d.tokens for d, _ in steps(page.runs["plain"]))
    ms, tps, prefill = find(r"Each token cost ([\d.]+) ms \(([\d.]+) tokens/s\), after a ([\d.]+) ms", c)
    assert ms == f"{t['busy'] / t['emitted'] * 1e3:.1f}" and tps == f"{t['tps']:.1f}"
    started = page.runs["plain"].events[0]
    assert isinstance(started, Started) and prefill == f"{started.prefill_s * 1e3:.1f}"


def check_2(page):
    c, r = caption(page), page.runs["draft"]
    t = totals(r)
    step, k, ms = find(r"Step (\d+): the drafter proposed (\d+) tokens and the target scored all "
                       r"of them in one pass \(([\d.]+) ms\)", c)
    d, v = steps(r)[int(step) - 1]
    assert v.step == int(step) - 1 and int(k) == len(d.tokens) == 5 and ms == f"{v.verify_s * 1e3:.1f}"
    if v.first_rejected is not None:
        agreed, nth, token, q, p, own, n = find(
            r"agreed with the first (\d+); the drafter's (\d+)\w\w token '(.*?)' was rejected: "
            r"q ([\d.]+), p ([\d.]+)\. The target wrote '(.*?)' there: (\d+) tokens", c)
        i = int(nth) - 1
        assert i == v.first_rejected and int(agreed) == sum(v.accepted[:i]) == i
        assert q == f"{d.q[i]:.2f}" and p == f"{v.p[i]:.2f}"
        assert squash(token) == squash(d.texts[i]) and squash(own) == squash(v.token_text)
        assert int(n) == len(v.emitted)
    else:
        assert "bonus token" in c
    n, passes, tau, acc = find(r"Whole answer: (\d+) tokens in (\d+) target passes \(tau ([\d.]+) "
                               r"tokens a pass\), acceptance (\d+)%", c)
    assert (int(n), int(passes)) == (t["emitted"], t["steps"])
    assert tau == f"{t['emitted'] / t['steps']:.2f}" and f"{acc}%" == f"{t['accepted'] / t['drafted']:.0%}"


def check_3(page):
    c = caption(page)
    plain, spec = (page.runs[k].events[-1].summary.token_ids for k in ("plain", "draft"))
    same, total = find(r"(\d+) of (\d+) tokens equal to plain decoding", c)
    assert int(same) == sum(a == b for a, b in zip(plain, spec)) and int(total) == len(plain)
    assert plain == spec  # float32: speculative greedy output is the target's, token for token
    nth, token, step, q, p, ratio, drew = find(
        r"the drafter's (\d+)\w\w token '(.*?)' in step (\d+) was rejected: q ([\d.]+), p ([\d.]+), "
        r"kept with probability min\(1, p/q\) = ([\d.]+)\. The target then drew '(.*?)' from", c)
    d, v = steps(page.runs["sampled"])[int(step) - 1]
    i = int(nth) - 1
    assert v.first_rejected == i and squash(token) == squash(d.texts[i])
    assert q == f"{d.q[i]:.2f}" and p == f"{v.p[i]:.2f}" and ratio == f"{min(1, v.p[i] / d.q[i]):.2f}"
    assert squash(drew) == squash(v.token_text)
    # the first rejection in the run, as the caption says it is the one shown
    assert all(vv.first_rejected is None for _, vv in steps(page.runs["sampled"])[: int(step) - 1])


def per_position(run):
    drafted, accepted = [], []
    for d, v in steps(run):
        for pos in range(len(d.tokens)):
            if pos == len(drafted):
                drafted.append(0)
                accepted.append(0)
            drafted[pos] += 1
            accepted[pos] += v.n_accepted > pos
    return [a / n for a, n in zip(accepted, drafted)]


def check_4(page):
    c = caption(page)
    t = {k: totals(page.runs[f"k={k}"]) for k in (2, 5, 12)}
    drafted, kept, first, last, nth = find(
        r"At k 12 the drafter drafted ([\d.]+) tokens a step and the target kept ([\d.]+); "
        r"acceptance fell from (\d+)% at the 1st position to (\d+)% at the (\d+)\w\w", c)
    assert drafted == f"{t[12]['drafted'] / t[12]['steps']:.1f}"
    assert kept == f"{t[12]['accepted'] / t[12]['steps']:.1f}"
    pos = per_position(page.runs["k=12"])
    assert f"{first}%" == f"{pos[0]:.0%}" and f"{last}%" == f"{pos[-1]:.0%}" and int(nth) == len(pos)
    short, long = find(r"drafting took ([\d.]+) ms a step at k 2 and ([\d.]+) ms at k 12", c)
    assert short == f"{t[2]['draft_s'] / t[2]['steps'] * 1e3:.1f}"
    assert long == f"{t[12]['draft_s'] / t[12]['steps'] * 1e3:.1f}"
    *speeds, best = find(r"Tokens/s: k 2: ([\d.]+), k 5: ([\d.]+), k 12: ([\d.]+); the fastest "
                         r"here is k (\d+)", c)
    assert speeds == [f"{t[k]['tps']:.1f}" for k in (2, 5, 12)]
    assert int(best) == max((2, 5, 12), key=lambda k: t[k]["tps"])


def cost(run):
    t = totals(run)
    return f"{t['draft_s'] / t['drafted'] * 1e3:.2f}"


def check_5(page, session):
    c = caption(page)
    if "trimmed" not in page.runs:
        ms, rows = find(r"Drafting one token cost ([\d.]+) ms with the drafter's full LM head of (\d+) rows", c)
        assert ms == cost(page.runs["full"]) and int(rows) == session.drafter_lm.vocab_size
        assert "No trimmed head was found" in c
        return
    vocab = session.vocab
    k, rows, full_ms, trim_ms, r_full, r_trim = find(
        r"keeps the (\d+) of (\d+) head rows the target uses most: a drafted token cost ([\d.]+) ms "
        r"with the full head and ([\d.]+) ms trimmed \(drafter/target weights read r ([\d.]+) -> "
        r"([\d.]+)\)", c)
    assert (int(k), int(rows)) == (vocab.k, len(vocab.ranking))
    assert full_ms == cost(page.runs["full"]) and trim_ms == cost(page.runs["trimmed"])
    target = session.target.read_params()
    assert r_full == f"{session.drafter_lm.read_params(len(vocab.ranking)) / target:.3f}"
    assert r_trim == f"{session.drafter_lm.read_params(vocab.k) / target:.3f}"
    kept = set(vocab.ranking[: vocab.k].tolist())
    assert all(x in kept for d, _ in steps(page.runs["trimmed"]) for x in d.tokens)
    a_full, a_trim = find(r"Acceptance went (\d+)% -> (\d+)%", c)
    for a, key in ((a_full, "full"), (a_trim, "trimmed")):
        t = totals(page.runs[key])
        assert f"{a}%" == f"{t['accepted'] / t['drafted']:.0%}"


def check_6(page):
    c = caption(page)
    lookup = page.runs["lookup"]
    t = totals(lookup)
    matched, n, kept, drafted, tau = find(r"found a match in (\d+) of (\d+) steps and the target kept "
                                          r"(\d+) of (\d+) copied tokens \(tau ([\d.]+)\)", c)
    assert int(matched) == sum(1 for d, _ in steps(lookup) if d.tokens) and int(n) == t["steps"]
    assert (int(kept), int(drafted)) == (t["accepted"], t["drafted"])
    assert tau == f"{t['emitted'] / t['steps']:.2f}"
    t1, t2, a1, a2 = find(r"tau went ([\d.]+) -> ([\d.]+) and acceptance (\d+)% -> (\d+)%", c)
    for tau, acc, key in ((t1, a1, "pool first"), (t2, a2, "pool again")):
        t = totals(page.runs[key])
        assert tau == f"{t['emitted'] / t['steps']:.2f}" and f"{acc}%" == f"{t['accepted'] / t['drafted']:.0%}"
    step, where, a, qa, b, qb = find(r"Trees: in step (\d+), (at the start|after '.*?'), the drafter was "
                                     r"unsure and tried '(.*?)' \(q ([\d.]+)\) and '(.*?)' \(q ([\d.]+)\)", c)
    d, v = steps(page.runs["tree"])[int(step) - 1]
    siblings = [(squash(d.texts[i]), f"{d.q[i]:.2f}", d.parents[i]) for i in range(len(d.tokens))]
    pa = next(s for s in siblings if s[:2] == (squash(a), qa))
    pb = next(s for s in siblings if s[:2] == (squash(b), qb) and s is not pa)
    assert pa[2] == pb[2] and (where == "at the start") == (pa[2] == -1)
    assert isinstance(page.runs["tree"].events[-1], Finished)


def check(page, session):
    {1: check_1, 2: check_2, 3: check_3, 4: check_4, 6: check_6}.get(
        page.number, lambda p: check_5(p, session))(page)
