"""The draft panel draws a jacobi block's refinement, and teaching mode steps through its passes."""
from rich.text import Text

from specscope.core.events import Drafted, Verified
from specscope.tui.widgets.draft_panel import Body, DraftPanel, step_view
from specscope.tui.widgets.refinement import CHANGED

from tui_helpers import SIZE, parked, run, send, settle

# A hand-made block of 3: guess (lookup) -> pass 1 changes positions 1 and 3 -> pass 2 changes
# position 3 again and reaches the fixed point.
BLOCKS = ((5, 6, 6), (7, 6, 8), (7, 6, 9))
TEXTS = ((" a", " b", " b"), (" x", " b", " y"), (" x", " b", " z"))
DRAFTED = Drafted(step=0, context_len=10, method="jacobi", draft_len=3, tokens=BLOCKS[-1],
                  texts=TEXTS[-1], q=(0.9, 0.8, 0.4), parents=(-1, 0, 1), draft_s=0.0,
                  refinement=BLOCKS, refinement_texts=TEXTS)
VERIFIED = Verified(step=0, p=(0.9, 0.7, 0.1), accepted=(True, True, False), n_accepted=2,
                    first_rejected=2, token=4, token_text=" w", bonus=False, emitted=(7, 6, 4),
                    pieces=(" x", " b", " w"), verify_s=0.0, draft_s=0.0)


def row_labels(plain: str) -> list[str]:
    """'guess', 'pass 1', ...: the refinement rows drawn."""
    return [" ".join(line.split()[:2]) if line.split()[0] == "pass" else "guess"
            for line in plain.splitlines() if line.split()[:1] in (["guess"], ["pass"])]


def highlighted(text: Text) -> list[str]:
    return [text.plain[s.start:s.end] for s in text.spans if s.style == CHANGED]


def test_the_panel_draws_each_pass_with_its_changes_then_the_verdict():
    view = step_view(DRAFTED, VERIFIED, show_timings=False)
    lines = view.plain.splitlines()
    rows = [line for line in lines if line.strip().startswith(("guess", "pass"))]
    assert len(rows) == 3 and "2 changed" in rows[1] and "1 changed" in rows[2]
    assert "fixed point" in rows[2] and "fixed point" not in rows[1]
    assert highlighted(view) == ["' x'", "' y'", "' z'"]  # exactly the tokens a pass changed
    assert "✓ accepted" in view.plain and "first rejection" in view.plain  # the verdict follows
    assert "refinement" not in step_view(DRAFTED.__class__(**{**DRAFTED.__dict__, "refinement": (),
                                                              "refinement_texts": ()}),
                                         VERIFIED).plain


def test_stepping_reveals_one_pass_at_a_time_before_the_verdict():
    partial = step_view(DRAFTED, VERIFIED, show_timings=False, reveal=1).plain
    assert row_labels(partial) == ["guess", "pass 1"] and "accepted" not in partial
    assert "n: pass 2" in partial


def test_teaching_mode_steps_through_the_passes(make):
    async def body():
        app = make(max_new_tokens=24, method="jacobi", draft_len=6, refine_steps=3)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("escape", "n")
            await send(pilot)
            await parked(pilot, 1)
            await pilot.press("n")
            await parked(pilot, 2)  # one step ran; its passes wait behind n presses
            panel = app.query_one(DraftPanel)
            drafted = panel.step[0]
            passes = len(drafted.refinement) - 1
            assert passes >= 1 and panel.reveal == 0
            assert row_labels(panel.query_one(Body).renderable.plain) == ["guess"]
            for t in range(1, passes + 1):
                await pilot.press("n")
                assert panel.reveal == t and app.gate.parks == 2  # no new step
                shown = row_labels(panel.query_one(Body).renderable.plain)
                assert shown == ["guess"] + [f"pass {i}" for i in range(1, t + 1)]
            await pilot.press("n")  # the verdict
            assert panel.reveal is None and "accepted" in panel.query_one(Body).renderable.plain
            assert app.gate.parks == 2
            await pilot.press("n")  # now the next step runs
            await parked(pilot, 3)
            assert panel.step[0] is not drafted and panel.reveal == 0
            await pilot.press("space")
            await settle(pilot)
            assert panel.reveal is None or not app.gate.paused

    run(body())
