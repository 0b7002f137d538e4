"""A model pass that fails mid-answer: the app shows the error and the next answer is exact."""
from specscope.session import make_controls

from tui_helpers import PROMPT, SIZE, rendered_text, run, send, settle, until


def engine_ids(session, messages, **overrides):
    events = list(session.decoder.run(session.encode(messages), make_controls(session.profile, **overrides)))
    return list(events[-1].summary.token_ids)


def test_a_failed_forward_pass_leaves_the_app_usable(make, tiny_session):
    want = engine_ids(tiny_session, [{"role": "user", "content": PROMPT}], max_new_tokens=40)
    # The target's last decoder layer fails once, mid-answer: the layers before it have already
    # written the pass into the KV cache, as a real failure (out of memory, say) would leave it.
    layer = tiny_session.target.base.layers[-1]
    original = layer.forward
    calls = {"n": 0}

    def fail_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the prefill is call 1: this is the third decoding step
            raise RuntimeError("injected failure of the target's forward pass")
        return original(*args, **kwargs)

    async def body():
        app = make(max_new_tokens=40)
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot)
            await settle(pilot)
            first = app.conversation.answers[0]
            assert "injected failure" in rendered_text(app.conversation.query_one(".error"))
            assert app.controls_panel.state == "idle" and 0 < len(first.steps) < 10
            runs = app.run_id
            await pilot.press("r")  # regenerate: the same prompt again
            await until(pilot, lambda: app.run_id > runs and app.running is None)
            await settle(pilot)
            answer = app.conversation.answers[-1]
            return [t for _, v in answer.steps for t in v.emitted]

    layer.forward = fail_once
    try:
        got = run(body())
    finally:
        layer.forward = original
        tiny_session.target.reset()  # the session is shared with other tests: leave it clean
        tiny_session.drafter_lm.reset()
    assert calls["n"] > 4 and got == want
