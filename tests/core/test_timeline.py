"""The per-step timeline of drafting ahead (core/timeline.py), built from fixed events."""
from specscope.core.events import Drafted, Overlap, Verified
from specscope.core.timeline import TimelineBuilder, lanes


def ov(branch, reused, spec_s, idle_s, wait_s, predrafted=0, missed=False):
    return Overlap(predrafted=predrafted, reused=reused, branch=branch, hedges=1,
                   hedge_missed=missed, spec_s=spec_s, draft_idle_s=idle_s, target_wait_s=wait_s)


def drafted(step, n, overlap, draft_s=0.1):
    return Drafted(step, 10 + step, "draft", n, tuple(range(n)), ("x",) * n, (0.5,) * n,
                   tuple(range(-1, n - 1)), draft_s, overlap=overlap)


def verified(step, accepted, n, verify_s):
    first = accepted if accepted < n else None
    return Verified(step, (0.5,) * n, tuple(i < accepted for i in range(n)), accepted, first, 7,
                    "7", first is None, (7,), ("7",), verify_s, 0.1)


def test_a_run_of_three_steps():
    events = [drafted(0, 3, ov("first", 0, 0.0, 0.0, 0.3)), verified(0, 3, 3, 0.5),
              # all accepted and the bonus guessed: 2 of 3 drafted ahead, both kept
              drafted(1, 3, ov("main", 2, 0.2, 0.3, 0.05, predrafted=4)), verified(1, 1, 3, 0.4),
              # cut at 1 where a hedge was ready with another token: drafted afresh
              drafted(2, 2, ov("", 0, 0.4, 0.0, 0.2, predrafted=6, missed=True)),
              verified(2, 0, 2, 0.45)]
    builder = TimelineBuilder()
    timelines = [t for e in events for t in builder.add(e)] + builder.finish()
    assert [t.step for t in timelines] == [0, 1, 2]
    first, second, last = timelines
    assert (first.wait_s, first.verify_s, first.ahead_s, first.drafter_idle_s) == (0.3, 0.5, 0.2, 0.3)
    assert (first.branch, first.next_branch, first.predrafted) == ("first", "main", 4)
    assert first.marks == ("accepted",) * 3
    assert second.marks == ("kept", "reused", "")  # 2 reused: the first accepted, the next refused
    assert (second.next_branch, second.hedge_missed, second.ahead_s) == ("", True, 0.4)
    assert last.marks == ("rejected", "") and last.next_branch == "?" and last.ahead_s == 0.0
    target, drafter = lanes(first, width=16)
    assert target == "·" * 6 + "█" * 10  # 0.3 s waiting, 0.5 s verifying, on 16 cells
    assert drafter == "▒" * 6 + "▓" * 4 + " " * 6  # drafted, then 0.2 s ahead, then idle


def test_serial_steps_have_a_timeline_too():
    builder = TimelineBuilder()
    out = builder.add(drafted(0, 2, None, draft_s=0.25)) + builder.add(verified(0, 2, 2, 0.5))
    out += builder.finish()
    assert len(out) == 1 and out[0].wait_s == 0.25 and out[0].branch == ""
    assert out[0].marks == ("accepted", "accepted")
