"""Token colours, read back from what the conversation widget draws (not assumed from the code).

Each drawn segment is sorted by its look: struck-through and red = rejected draft, bold and
cyan = the target's token, green = accepted draft, italic = a draft past the end of the answer.
The text of each kind must be exactly what the engine's events say it is.
"""
from collections import defaultdict

from specscope.frontends.generate import dropped_nodes, inline, printable, rejected_branch

from tui_helpers import SIZE, rendered_lines, run, send, settle


def kind(style) -> str:
    r, g, b = style.color.get_truecolor()
    if style.italic:
        return "dropped"
    if style.strike:
        assert r > g and r > b, f"rejected draft is not red: {(r, g, b)}"
        return "rejected"
    if style.bold:
        assert g > r and b > r, f"target token is not cyan: {(r, g, b)}"
        return "target"
    if g > r + 40 and g > b + 40:
        return "accepted"
    return "plain"


def drawn(widget) -> dict[str, str]:
    out = defaultdict(str)
    for line in rendered_lines(widget):
        for segment in line:
            if segment.text.strip():
                out[kind(segment.style)] += segment.text
                out["all"] += segment.text  # in drawn order
    return out


def squash(text: str) -> str:
    """Wrapping may drop or move spaces at line ends: compare without whitespace."""
    return "".join(text.split())


def expected(steps) -> dict[str, str]:
    out = defaultdict(str)
    for drafted, verified in steps:
        n = verified.n_accepted
        out["accepted"] += printable("".join(verified.pieces[:n]))
        out["dropped"] += inline("".join(drafted.texts[i] for i in dropped_nodes(verified)))
        if verified.first_rejected is not None:
            branch = rejected_branch(drafted.parents, verified.first_rejected)
            out["rejected"] += inline("".join(drafted.texts[i] for i in branch))
        out["target"] += printable("".join(verified.pieces[n:]))
    return out


def test_accepted_rejected_and_target_tokens_are_drawn_in_their_colours(make):
    async def body():
        app = make(max_new_tokens=48)
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot)
            await settle(pilot)
            answer = app.conversation.answers[0]
            want = expected(answer.steps)
            assert all(squash(want[k]) for k in ("accepted", "rejected", "target"))
            got = drawn(answer)
            for k in ("accepted", "rejected", "dropped", "target"):
                assert squash(got[k]) == squash(want[k]), k
            assert not squash(got["plain"])

            await pilot.press("h")  # hide rejected drafts: clean reading
            got = drawn(answer)
            assert not got["rejected"] and not got["dropped"]
            assert squash(got["accepted"] + got["target"]) != ""
            assert squash(got["all"]) == squash(printable(answer.text))
            await pilot.press("h")
            assert squash(drawn(answer)["rejected"]) == squash(want["rejected"])

    run(body())


def test_plain_decoding_draws_the_targets_tokens_uncoloured(make):
    async def body():
        app = make(max_new_tokens=16, method="ar")
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot)
            await settle(pilot)
            answer = app.conversation.answers[0]
            got = drawn(answer)
            assert set(got) == {"plain", "all"}
            assert squash(got["plain"]) == squash(printable(answer.text))

    run(body())
