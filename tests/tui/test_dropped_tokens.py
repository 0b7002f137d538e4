"""A draft that runs past the end of the answer: cut tokens are shown as dropped, not accepted,
and a step that ended the answer shows no correction. Driven by fixed events (no model)."""
from textual.app import App

from specscope.core.events import Drafted, Verified
from specscope.frontends.generate import render_step
from specscope.frontends.marks import step_marks
from specscope.tui.widgets.draft_panel import DraftPanel

from tui_helpers import rendered_text, run

EOS = 99
# The drafter wrote ' fine', <|im_end|>, 'Human', ':' and ' hi'; the target agreed with the first
# four (so its own token comes after ':'), but the answer ends at <|im_end|>: 'Human' and ':' are
# cut, and the target's token ' Hello' (its correction of ' hi') is never emitted.
DRAFTED = Drafted(step=3, context_len=30, method="draft", draft_len=5, tokens=(5, EOS, 7, 8, 9),
                  texts=(" fine", "<|im_end|>", "Human", ":", " hi"),
                  q=(0.9, 0.8, 0.7, 0.6, 0.5), parents=(-1, 0, 1, 2, 3), draft_s=0.0)
def verified(accepted, dropped, token_emitted, emitted, pieces):
    """Verified as the core makes it (after a cut, no first rejection: nothing was checked past it)."""
    return Verified(step=3, p=(0.95, 0.9, 0.8, 0.7, 0.1), accepted=accepted,
                    n_accepted=sum(accepted), first_rejected=4 if token_emitted else None,
                    token=11, token_text=" Hello", bonus=False, emitted=emitted, pieces=pieces,
                    verify_s=0.0, draft_s=0.0, dropped=dropped, token_emitted=token_emitted)


CUT = verified((True, True, False, False, False), (False, False, True, True, False), False,
               (5, EOS), (" fine", ""))
WHOLE = verified((True, True, True, True, False), (False,) * 5, True,
                 (5, EOS, 7, 8, 11), (" fine", "", "Human", ":", " Hello"))


class PanelApp(App):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def compose(self):
        yield DraftPanel(show_timings=False)

    def on_mount(self):
        self.query_one(DraftPanel).show(DRAFTED, self.step)


def panel_text(step) -> str:
    async def body():
        app = PanelApp(step)
        async with app.run_test(size=(80, 20)) as pilot:
            await pilot.pause()
            return rendered_text(app.query_one("#draft-body"))

    return run(body())


def rows(text: str) -> dict[int, str]:
    """draft position (1-based) -> its row in the chain."""
    return {int(line[:2]): line for line in text.splitlines() if line[:2].strip().isdigit()}


def test_hand_made_events_without_dropped_are_read_from_emitted():
    bare = Verified(step=0, p=(0.5,), accepted=(True,), n_accepted=1, first_rejected=None, token=1,
                    token_text="x", bonus=True, emitted=(5, 1), pieces=("a", "x"), verify_s=0.0,
                    draft_s=0.0)
    assert step_marks(bare) == ((True,), (False,), True)


def test_tokens_past_the_end_are_dropped_and_no_correction_is_shown():
    text = panel_text(CUT)
    r = rows(text)
    assert "✓ accepted" in r[1] and "✓ accepted" in r[2] and "'<|im_end|>'" in r[2]
    assert "– dropped" in r[3] and "– dropped" in r[4] and "'Human'" in r[3]
    assert "accepted" not in r[3] + r[4]
    assert "Hello" not in text and "correction" not in text
    assert "the answer ended here" in text
    assert "accepted 2/5, emitted 2, dropped 2" in text


def test_a_step_that_did_not_end_the_answer_keeps_its_correction():
    text = panel_text(WHOLE)
    r = rows(text)
    assert all("✓ accepted" in r[i] for i in (1, 2, 3, 4)) and "first rejection" in r[5]
    assert "' Hello'  target's correction" in text and "dropped" not in text


def test_answer_colours_end_with_the_answer():
    from specscope.frontends.generate import STYLES

    cut = render_step(DRAFTED, CUT, hide_rejected=False)
    by_style = {}
    for span in cut.spans:
        by_style[str(span.style)] = by_style.get(str(span.style), "") + cut.plain[span.start:span.end]
    assert by_style[STYLES["accepted"]] == " fine"  # <|im_end|> adds no text
    assert "Human" in by_style[STYLES["dropped"]] and "Human" not in by_style[STYLES["accepted"]]
    assert " hi" not in cut.plain and " Hello" not in cut.plain  # no rejection, no correction
    whole = render_step(DRAFTED, WHOLE, hide_rejected=False)
    assert " hi" in whole.plain and whole.plain.endswith(" Hello")
