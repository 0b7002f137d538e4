"""The drafter-vocabulary control with a trimmed head loaded: halving it changes the drafts."""
import pytest

from specscope.core.vocab import read_trimmed
from specscope.tui.app import make_app

from tui_helpers import SIZE, parked, rendered_text, run, send, settle, until


def test_vocab_size_changes_mid_run_and_later_drafts_stay_inside_it(tiny_trimmed):
    ranking = read_trimmed(tiny_trimmed).ranking.tolist()

    async def body():
        app = make_app("tiny-random", trimmed=tiny_trimmed, snapshot=True, max_new_tokens=40)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.session is not None)
            panel = app.controls_panel
            assert "300 of 1024 rows" in rendered_text(panel)
            await pilot.press("escape", "n")
            await send(pilot)
            await parked(pilot, 1)
            await pilot.press("n")
            await parked(pilot, 2)
            await pilot.press("v", "v", "v")  # 300 -> 150 -> 75 -> 37 rows, while parked
            assert app.controls.vocab_top_k == 37 and "37 of 1024 rows" in rendered_text(panel)
            await pilot.press("space")
            await settle(pilot)
            drafts = [d for d, _ in app.conversation.answers[0].steps]
            assert all(t in ranking[:300] for t in drafts[0].tokens)
            later = [t for d in drafts[1:] for t in d.tokens]
            assert later and all(t in ranking[:37] for t in later)
            await pilot.press("V")
            assert app.controls.vocab_top_k == 74

    run(body())


def test_fastmtp_methods_show_the_heads_own_rows_not_the_trimmed_drafters():
    from specscope.core.controls import Controls
    from specscope.tui.widgets.controls_panel import ControlsPanel

    panel = ControlsPanel(Controls(method="mtp-tree"))
    assert "the head's own ranked rows + the context's tokens" in panel.render().plain
    panel.set_reactive(ControlsPanel.vocab_top_k, 2048)
    assert "2048 of the head's ranked rows" in panel.render().plain
    panel.set_reactive(ControlsPanel.method, "draft")
    assert "no trimmed vocabulary" in panel.render().plain
