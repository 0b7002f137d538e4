"""Loading behind a progress screen, and every kind of failure: shown, not raised; or exit 2."""
import pytest
from typer.testing import CliRunner

from specscope.cli import app as cli
from specscope.profiles import Profile
from specscope.tui.app import SpecScopeApp, make_app
from specscope.tui.screens.loading import LoadingScreen

from tui_helpers import SIZE, rendered_text, run, send, settle, until


def test_models_load_behind_a_progress_screen_then_the_chat_works():
    async def body():
        app = make_app("tiny-random", snapshot=True, max_new_tokens=12)
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, LoadingScreen)
            await until(pilot, lambda: app.session is not None)
            assert not isinstance(app.screen, LoadingScreen)
            assert app.controls_panel.methods == app.session.decoder.methods
            await send(pilot)
            await settle(pilot)
            assert app.last_summary.new_tokens == 12

    run(body())


def test_a_model_that_cannot_load_is_reported_on_the_loading_screen(tmp_path):
    async def body():
        broken = Profile(name="broken", target=str(tmp_path / "no-such-model"), dtype="float32")
        app = make_app(broken)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, LoadingScreen)
            await until(pilot, lambda: screen.failed)
            text = rendered_text(screen.query_one("#load-error"))
            assert "error:" in text and "no-such-model" in text and "r: try again" in text
            await pilot.press("r")  # retry: fails the same way, the screen stays usable
            await until(pilot, lambda: screen.failed)
            await pilot.press("q")
        assert app.session is None

    run(body())


def test_a_generation_failure_is_shown_and_the_app_stays_usable(make, tiny_session, monkeypatch):
    real_run = tiny_session.decoder.run

    def failing_run(ids, controls):
        events = real_run(ids, controls)
        for i, event in enumerate(events):
            if i == 5:
                events.close()
                raise RuntimeError("the target fell over")
            yield event

    async def body():
        app = make(max_new_tokens=20)
        async with app.run_test(size=SIZE) as pilot:
            monkeypatch.setattr(tiny_session.decoder, "run", failing_run)
            await send(pilot)
            await settle(pilot)
            answer = app.conversation.answers[0]
            assert answer.steps and "[failed]" in answer.render().plain
            errors = [rendered_text(e) for e in app.conversation.query(".error")]
            assert errors == ["error: RuntimeError: the target fell over"]
            monkeypatch.undo()
            await send(pilot, "again")
            await settle(pilot)
            assert app.last_summary.new_tokens == 20

    run(body())


def test_a_prompt_too_long_for_the_context_is_an_error_message(make):
    async def body():
        app = make(max_new_tokens=8)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.query_one("#prompt").value = "cache " * 4000
            app.query_one("#prompt").focus()
            await pilot.press("enter")
            await pilot.pause()
            errors = [rendered_text(e) for e in app.conversation.query(".error")]
            assert len(errors) == 1 and "context window" in errors[0]
            assert app.messages == [] and app.running is None
            await send(pilot, "short")
            await settle(pilot)
            assert app.last_summary.new_tokens == 8

    run(body())


@pytest.mark.parametrize("args, needle", [
    (["-p", "no-such-profile"], "unknown profile 'no-such-profile'"),
    (["-p", "tiny-random", "--dtype", "float64"], "float64"),
    (["-p", "tiny-random", "--device", "tpu"], "tpu"),
    (["-p", "tiny-random", "-k", "99"], "draft length must be between 0 and 32"),
    (["-p", "tiny-random", "-m", "telepathy"], "unknown method 'telepathy'"),
    (["-p", "tiny-random", "-t", "-1"], "temperature must be >= 0"),
    (["-p", "tiny-random", "--vocab-top-k", "100"], "--vocab-top-k needs a frequency ranking"),
])
def test_bad_chat_options_fail_before_the_app_starts(args, needle, monkeypatch):
    def started(self, *a, **kw):
        raise AssertionError("the app started despite a bad option")

    monkeypatch.setattr(SpecScopeApp, "run", started)
    result = CliRunner().invoke(cli, ["chat", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


@pytest.mark.parametrize("args, expected", [
    (["-k", "7", "-t", "0.5"], {"draft_len": 7, "adaptive": False, "temperature": 0.5}),
    (["-k", "auto"], {"adaptive": True, "adaptive_rule": "cost"}),
    (["-k", "auto:heuristic", "-m", "ar"], {"adaptive": True, "adaptive_rule": "heuristic",
                                            "method": "ar"}),
])
def test_good_chat_options_become_the_starting_controls(args, expected, monkeypatch):
    seen = {}

    def started(self, *a, **kw):
        seen.update(vars(self.controls))

    monkeypatch.setattr(SpecScopeApp, "run", started)
    monkeypatch.setattr("specscope.cli.chat.require_terminal", lambda command: None)  # CliRunner has none
    result = CliRunner().invoke(cli, ["chat", "-p", "tiny-random", *args])
    assert result.exit_code == 0, result.output
    assert {k: seen[k] for k in expected} == expected
