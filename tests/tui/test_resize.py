"""Resizing the explorer down to 80x24 mid-answer and back: every panel still draws its content."""
from specscope.tui.widgets.draft_panel import DraftPanel

from tui_helpers import SIZE, parked, rendered_text, run, send, settle


def test_resize_to_80x24_and_back_mid_answer(make):
    async def body():
        app = make(max_new_tokens=40)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("escape", "n")  # teaching mode: the answer waits for us
            await send(pilot)
            await parked(pilot, 1)
            await pilot.press("n")
            await parked(pilot, 2)
            before = rendered_text(app.query_one("#draft-body"))
            assert "step 1" in before
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            assert app.size == (80, 24)
            for selector in ("#conversation", "#draft", "#stats", "#prompt"):
                w = app.query_one(selector)
                assert w.region.width > 0 and w.region.height > 0, selector
                assert w.region.right <= 80 and w.region.bottom <= 23, selector  # above the key bar
            assert not app.query_one("#controls").display  # compact: the draft panel gets the room
            draft = rendered_text(app.query_one("#draft-body"))
            drafted, verified = app.query_one(DraftPanel).step
            assert "step 1" in draft and "→" in draft  # the whole step, down to the target's token
            assert app.query_one("#draft").region.height >= len(drafted.tokens) + 6
            await pilot.press("n")  # the run goes on at the small size
            await parked(pilot, 3)
            assert "step 2" in rendered_text(app.query_one("#draft-body"))
            await pilot.resize_terminal(*SIZE)
            await pilot.pause()
            assert app.query_one("#controls").display and app.query_one("#controls").region.height > 0
            await pilot.press("space")
            await settle(pilot)
            assert app.last_summary.new_tokens == 40
            drafted, verified = app.query_one(DraftPanel).step
            assert f"step {verified.step + 1}" in rendered_text(app.query_one("#draft-body"))

    run(body())
