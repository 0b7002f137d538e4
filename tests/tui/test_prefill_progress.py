"""A long prompt's prefill in the explorer: progress shows as the run's state, and arrives at once."""
from specscope.core.events import Finished, Prefilling, Started
from specscope.core.stats import Stats
from specscope.session import make_controls
from specscope.tui.generation import Gate, drive

from tui_helpers import PROMPT, SIZE, run, send, settle


def fake_prefill(closed):
    try:
        for done in (0, 8, 16):
            yield Prefilling("target", done, 16)
        yield Started(17, "draft", 0.0)
        yield Finished(Stats().summary("max_new_tokens"))
    finally:
        closed.append(True)


def test_prefill_progress_is_sent_at_once_and_can_be_cancelled():
    batches = []
    drive(fake_prefill([]), Gate(), lambda batch, s: batches.append(batch), lambda: False,
          batch_s=60.0)  # a slow clock: only what must go at once goes alone
    assert [[e.kind for e in b] for b in batches] == [["prefilling"]] * 3 + [["started", "finished"]]
    closed, seen = [], []
    summary, _ = drive(fake_prefill(closed), Gate(), lambda batch, s: seen.extend(batch),
                       lambda: len(seen) >= 2, batch_s=60.0)
    assert summary is None and closed == [True] and len(seen) == 2


def test_the_state_line_shows_both_prefills_then_the_answer_is_the_engines(make, tiny_session):
    lms = [tiny_session.decoder.target, tiny_session.drafter_lm]

    async def body():
        app = make(max_new_tokens=12, method="draft", draft_len=3)
        states = []
        show = app.show_prefill

        def spy(event):
            show(event)
            states.append(app.controls_panel.state)

        app.show_prefill = spy
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot)
            await settle(pilot)
            ids = tiny_session.encode([{"role": "user", "content": PROMPT}])
            n = len(ids) - 1
            assert states[0] == f"reading prompt 0/{n}"
            assert f"drafter reading 8/{n}" in states
            assert states[-1] == "generating" and app.controls_panel.state == "idle"
            tiny_session.decoder.reset()
            events = list(tiny_session.decoder.run(ids, make_controls(
                tiny_session.profile, method="draft", draft_len=3, max_new_tokens=12)))
            assert isinstance(events[-1], Finished)
            answer = [t for _, v in app.conversation.answers[0].steps for t in v.emitted]
            assert answer == list(events[-1].summary.token_ids)

    try:
        for lm in lms:
            lm.prefill_chunk = 8
        tiny_session.decoder.reset()
        run(body())
    finally:
        for lm in lms:
            del lm.prefill_chunk  # back to the class default
        tiny_session.decoder.reset()
