"""Keys typed while the models load are a prompt, never controls; a new answer always runs.

Issue 34: a prompt typed while the models loaded reached the app's control keys (space paused,
letters changed settings, the prompt was lost), and the prompt sent later sat paused, said only
in the controls panel.
"""
import re
import threading

from specscope.session import make_controls
from specscope.tui.app import SpecScopeApp
from specscope.tui.screens.loading import LoadingScreen

from tui_helpers import SIZE, parked, rendered_text, run, send, until

TYPED = "Is n+1 prime? Write a Python function that checks whether a number is prime."


def slow_app(session, **options):
    """An app whose loading waits for `release`; it then hands over the loaded tiny session."""
    release = threading.Event()

    def loader(progress):
        progress("loading tiny-random:target", 0, None)
        assert release.wait(30), "the test never released the loader"
        return session

    controls = make_controls(session.profile, **options)
    return SpecScopeApp(session.profile, controls, loader, snapshot=True), release


def settings(app):
    c = app.controls
    return (app.gate.paused, c.method, c.draft_len, c.temperature, c.top_p, c.adaptive,
            app.conversation.hide_rejected)


def test_keys_typed_while_loading_go_to_the_prompt_not_to_the_controls(tiny_session):
    async def body():
        app, release = slow_app(tiny_session, max_new_tokens=12)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, LoadingScreen)
            before = settings(app)
            await pilot.press(*TYPED)
            await pilot.press("enter")  # sent as soon as the models are loaded
            assert app.screen is screen  # '?' opened no help screen, nothing quit
            assert settings(app) == before  # space, n, m, +, p, t, h, a: none reached an action
            assert screen.query_one("#early-prompt").value == TYPED
            title = rendered_text(screen.query_one("#load-title"))  # what loads, for how long
            stage = rendered_text(screen.stages["loading tiny-random:target"].label)
            assert "tiny-random" in title and re.search(r"\(\d+ s\)", title)
            assert re.fullmatch(r"loading tiny-random:target  \d+ s", stage.strip())
            release.set()
            await until(pilot, lambda: app.last_summary is not None, timeout=20)
            assert app.messages[0] == {"role": "user", "content": TYPED}
            assert app.last_summary.new_tokens == 12 and not app.gate.paused

    run(body())


def test_a_prompt_typed_while_loading_waits_in_the_prompt_box(tiny_session):
    async def body():
        app, release = slow_app(tiny_session)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press(*"a b c")
            release.set()
            await until(pilot, lambda: app.session is not None)
            prompt = app.query_one("#prompt")
            assert prompt.value == "a b c" and prompt.has_focus and not app.messages

    run(body())


def test_a_line_typed_before_the_app_started_is_sent(tiny_session):
    """Typed while Python starts, the terminal is still in line mode: Enter arrives as ctrl+j."""

    async def body():
        app, release = slow_app(tiny_session, max_new_tokens=8)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press(*"a b c", "ctrl+j")
            release.set()
            await until(pilot, lambda: app.last_summary is not None, timeout=20)
            assert app.messages[0] == {"role": "user", "content": "a b c"}

    run(body())


def test_a_prompt_sent_while_paused_starts_generating(make):
    async def body():
        app = make(max_new_tokens=30)
        async with app.run_test(size=SIZE) as pilot:
            # A pause left from a stopped run: the next prompt runs anyway.
            await pilot.press("escape", "n")  # n before sending: this answer steps
            await send(pilot)
            await parked(pilot, 1)
            await pilot.press("s")
            await until(pilot, lambda: app.running is None)
            await send(pilot, "And another?")
            await until(pilot, lambda: app.last_summary is not None, timeout=10)
            assert app.last_summary.new_tokens == 30 and app.controls_panel.state == "idle"
            # Space while nothing runs pauses nothing.
            await pilot.press("escape", "space")
            await send(pilot, "A third?")
            await until(pilot, lambda: app.running is None and len(app.messages) == 6, timeout=10)
            assert app.last_summary.new_tokens == 30 and not app.gate.paused

    run(body())


def test_a_paused_answer_says_so_in_the_conversation(make):
    async def body():
        app = make(max_new_tokens=30)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("escape", "n")
            await send(pilot)
            await parked(pilot, 1)
            answer = app.conversation.answers[0]
            shown = rendered_text(answer)  # under the prompt, where the answer will appear
            assert "paused" in shown and "space resumes" in shown and "n: one step" in shown
            await pilot.press("space")
            await until(pilot, lambda: app.running is None, timeout=10)
            assert "paused" not in rendered_text(answer) and answer.text

    run(body())
