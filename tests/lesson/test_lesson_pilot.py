"""The lesson app through Pilot at 80x24: every chapter, back/forward, restart, a failing run, quit."""
import asyncio

from textual.geometry import Region

from specscope.lesson.basics import PROMPT
from specscope.lesson.chapters import CHAPTERS
from specscope.tui.lesson_app import LessonApp

from lesson_checks import check

SIZE = (80, 24)


async def until(pilot, condition, timeout=60.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "timed out waiting for the lesson"
        await pilot.pause(0.01)
    await pilot.pause()


def screen_text(app, selector) -> str:
    """What a widget draws inside its border, whitespace squashed (the screen wraps the caption)."""
    widget = app.query_one(selector)
    width, height = widget.outer_size
    lines = ["".join(seg.text for seg in strip) for strip in widget.render_lines(Region(0, 0, width, height))]
    return " ".join(" ".join(line.strip("│╭╮╰╯─") for line in lines).split())


def squash(s: str) -> str:
    return " ".join(s.split())


async def shown(pilot, number):
    app = pilot.app
    await until(pilot, lambda: app.current == number and number in app.pages)
    want = squash(" ".join(app.pages[number].caption))
    await until(pilot, lambda: want in screen_text(app, "#lesson-caption"), timeout=5)


def test_every_chapter_on_screen_states_its_own_runs_numbers(tiny_session):
    async def body():
        app = LessonApp(tiny_session.profile, max_new_tokens=24, session=tiny_session)
        async with app.run_test(size=SIZE) as pilot:
            for number in range(1, len(CHAPTERS) + 1):
                if number > 1:
                    await pilot.press("space")
                await shown(pilot, number)
                title = screen_text(app, "#lesson-title")
                assert title.startswith(f"{number}/6 · {CHAPTERS[number - 1][0]}")
                check(app.pages[number], tiny_session)
            await pilot.press("space")  # past the last chapter: stays
            assert app.current == 6
            kept = app.pages[4]
            await pilot.press("left", "left")
            await shown(pilot, 4)
            assert app.pages[4] is kept  # going back shows the chapter as it ran
            await pilot.press("r")  # restart: a new live run
            await until(pilot, lambda: 4 in app.pages and app.pages[4] is not kept)
            await shown(pilot, 4)
            check(app.pages[4], tiny_session)
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0

    asyncio.run(body())


def test_a_failing_run_is_shown_and_the_chapter_can_be_rerun(tiny_session):
    # The target's last decoder layer fails once, mid-answer: the layers before it have already
    # written this pass into the KV cache, as a real failure (out of memory, say) would leave it.
    model = tiny_session.target.base.layers[-1]
    calls = {"n": 0}
    original = model.forward

    def fail_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # mid-answer: after the prefill and a few decoding passes
            raise RuntimeError("injected failure of the target's forward pass")
        return original(*args, **kwargs)

    async def body():
        app = LessonApp(tiny_session.profile, max_new_tokens=24, session=tiny_session)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: 1 in app.errors)
            assert "injected failure" in screen_text(app, "#lesson-content")
            assert "r runs it again" in screen_text(app, "#lesson-caption")
            await pilot.press("r")
            await shown(pilot, 1)
            check(app.pages[1], tiny_session)
            ids = app.pages[1].runs["plain"].events[-1].summary.token_ids
        return ids

    model.forward = fail_once
    try:
        ids = asyncio.run(body())
    finally:
        model.forward = original
        tiny_session.target.reset()  # the session is shared with other tests: leave it clean
    controls = tiny_session.controls(method="ar", temperature=0.0, max_new_tokens=24)
    prompt = tiny_session.encode(PROMPT)
    fresh = list(tiny_session.decoder.run(prompt, controls))[-1].summary.token_ids
    assert ids == fresh and calls["n"] >= 5


def test_the_lesson_loads_its_models_behind_the_loading_screen(tiny_session):
    async def body():
        app = LessonApp(tiny_session.profile, max_new_tokens=24, loader=lambda progress: tiny_session)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.session is not None)
            assert app.session is tiny_session
            await shown(pilot, 1)  # no prompt box on its loading screen: the lesson has none
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0

    asyncio.run(body())
