"""How the explorer looks, as SVG snapshots (pytest-textual-snapshot).

Deterministic: the pictures are drawn from fixed, hand-made engine events (fixed_events.py), not
from a model's numerics, with timings hidden (snapshot mode) and no cursor blink. Regenerate after a deliberate
change of looks with `pytest tests/tui --snapshot-update` and review the SVGs.
"""
from textual.app import App

from specscope.core.events import Drafted, Verified
from specscope.tui.widgets.draft_panel import DraftPanel

from specscope.core.events import Finished
from specscope.tui.messages import EngineEvents, RunEnded

from fixed_events import events
from tui_helpers import PROMPT, SIZE, until

# A hand-made tree step: the context has two children; the accepted path is 0 -> 2 -> 4, node 5
# (under 4) is the first rejection and the target puts ' small' there instead.
#   context ─ 0 ' the' ─┬─ 2 ' cache' ─ 4 ' is' ─ 5 ' fast'
#           │           └─ 3 ' quick'
#           └ 1 ' a' ─── 6 ' tree'
TREE_DRAFTED = Drafted(step=6, context_len=42, method="tree", draft_len=4,
                       tokens=(10, 11, 12, 13, 14, 15, 16),
                       texts=(" the", " a", " cache", " quick", " is", " fast", " tree"),
                       q=(0.61, 0.22, 0.48, 0.30, 0.83, 0.35, None),
                       parents=(-1, -1, 0, 0, 2, 4, 1), draft_s=0.0)
TREE_VERIFIED = Verified(step=6, p=(0.74, 0.11, 0.66, 0.05, 0.91, 0.08, 0.02),
                         accepted=(True, False, True, False, True, False, False), n_accepted=3,
                         first_rejected=5, token=17, token_text=" small", bonus=False,
                         emitted=(10, 12, 14, 17), pieces=(" the", " cache", " is", " small"),
                         verify_s=0.0, draft_s=0.0)


class DraftPanelApp(App):
    CSS = "DraftPanel { height: 1fr; border: round $secondary; padding: 0 1; }"

    def compose(self):
        yield DraftPanel(show_timings=False)

    def on_mount(self):
        self.query_one(DraftPanel).show(TREE_DRAFTED, TREE_VERIFIED, note="(hand-made tree)")


async def play_fixed_run(pilot):
    """Hand the app a finished run of fixed events, as its generation worker would."""
    app = pilot.app
    await pilot.pause()
    app.messages.append({"role": "user", "content": PROMPT})
    app.conversation.add_user(PROMPT)
    app.answer = app.conversation.add_answer()
    app.stats_panel.reset("draft", 0.33)
    app.run_id += 1
    app.running = "answer"
    fixed = events()
    app.post_message(EngineEvents(app.run_id, tuple(fixed), 1.0))
    summary = fixed[-1].summary if isinstance(fixed[-1], Finished) else None
    app.post_message(RunEnded(app.run_id, summary, 1.0))
    await until(pilot, lambda: app.running is None)
    await pilot.press("escape")


def test_main_screen_after_a_fixed_run(snap_compare, make):
    assert snap_compare(make(), terminal_size=SIZE, run_before=play_fixed_run)


def test_main_screen_at_80x24(snap_compare, make):
    assert snap_compare(make(), terminal_size=(80, 24), run_before=play_fixed_run)


def test_draft_panel_draws_a_tree(snap_compare):
    assert snap_compare(DraftPanelApp(), terminal_size=(80, 20))


def test_help_screen(snap_compare, make):
    assert snap_compare(make(), terminal_size=SIZE, press=["escape", "question_mark"])
