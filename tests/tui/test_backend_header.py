"""The header says which backend runs and, where this machine's costs are measured, its
verify-cost curve (a pass over 2-16 tokens in 1-token passes); snapshot mode hides it."""
from specscope.tui.app import backend_note
from tests.tui.tui_helpers import SIZE, run


def test_the_note_names_the_backend_and_its_curve():
    assert backend_note("torch", None) == " · torch"
    assert backend_note("llama.cpp", {1: 1.0, 2: 1.9, 4: 2.05, 8: 4.7, 16: 8.0}) == \
        " · llama.cpp: verify 2/4/8/16 tok = 1.9/2.0/4.7/8.0 passes"


def test_the_header_of_a_running_app_says_it(make, tiny_session):
    async def body(snapshot):
        app = make(snapshot=snapshot)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            return app.sub_title

    saved = tiny_session.decoder.verify_curve
    tiny_session.decoder.verify_curve = {1: 1.0, 2: 1.1, 4: 1.2, 8: 1.5, 16: 2.0}
    try:
        shown, hidden = run(body(False)), run(body(True))
    finally:
        tiny_session.decoder.verify_curve = saved
    assert shown.endswith(" · torch: verify 2/4/8/16 tok = 1.1/1.2/1.5/2.0 passes")
    assert "torch" not in hidden
