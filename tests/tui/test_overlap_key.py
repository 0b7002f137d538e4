"""Key `o`: drafting ahead on and off in chat, only with the drafter's worker; the draft panel
then says where each step's proposal came from."""
from dataclasses import replace

import torch

from specscope.profiles import load_profile
from specscope.session import load_session
from specscope.tui.app import make_app
from specscope.tui.widgets.draft_panel import Body

from tui_helpers import SIZE, rendered_text, run, send, settle, until


def test_without_a_worker_o_only_says_how(make):
    async def body():
        app = make()
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.session is not None)
            await pilot.press("escape", "o")
            assert not app.controls.overlap and "overlap" not in rendered_text(app.controls_panel)

    run(body())


def test_with_a_worker_o_toggles_drafting_ahead_and_the_panel_shows_it():
    threads = torch.get_num_threads()
    session = load_session(replace(load_profile("tiny-random"), overlap=False, draft_threads=1))
    try:
        async def body():
            app = make_app(session=session, snapshot=True, max_new_tokens=16, method="draft")
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.session is not None)
                assert "overlap       off: takes turns" in rendered_text(app.controls_panel)
                await pilot.press("escape", "o")
                assert app.controls.overlap
                assert "overlap       on: drafts ahead" in rendered_text(app.controls_panel)
                await send(pilot)
                await settle(pilot)
                steps = app.conversation.answers[0].steps
                assert all(d.overlap is not None for d, _ in steps if d is not None and d.tokens)
                await pilot.pause()
                assert "ahead: from" in rendered_text(app.draft_panel.query_one(Body))

        run(body())
    finally:
        session.close()
        torch.set_num_threads(threads)
