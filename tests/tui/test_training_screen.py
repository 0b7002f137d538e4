"""M in chat trains the profile's FastMTP head in a child process (`mtp train --json`, the same
command as in a terminal), shows the plan and the held-apart acceptance at each evaluation, and
the open session then drafts with the head it wrote (greedy output unchanged)."""
import json

from rich.console import Console
from typer.testing import CliRunner

from specscope.cli import app as cli_app
from specscope.profiles import load_profile
from specscope.session import load_session, make_controls
from specscope.tui.app import make_app
from specscope.tui.screens.training import TrainingScreen, render

from tui_helpers import SIZE, run, until

SMALL = ["--max-new-tokens", "8", "--limit", "1", "--held", "1", "--samples", "2", "--tokens", "100"]


def shown(run_):
    console = Console(record=True, width=120)
    for part in render(run_):
        console.print(part)
    return console.export_text()


def test_mtp_train_json_gives_one_event_a_line_and_a_last_done_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    r = CliRunner().invoke(cli_app, ["mtp", "train", "-p", "tiny-random", "--json", *SMALL])
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in r.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done" and {"note", "started", "progress", "ended"} <= set(kinds)
    assert any(e["event"] == "note" and e["text"].startswith("plan for 30 min") for e in events)
    assert len(events[-1]["estimate_acceptance"]) == 3 and not events[-1]["interrupted"]
    assert "held-out estimate" in r.stderr  # the report, beside the events


def test_m_trains_the_head_shows_the_climb_and_the_session_then_drafts_with_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    session = load_session(load_profile("tiny-random"))  # its own: it gains the head
    assert "mtp" not in session.decoder.methods

    async def body():
        app = make_app(session=session, snapshot=True)
        app.train_args = SMALL
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("escape", "M")
            assert isinstance(app.screen, TrainingScreen)
            await until(pilot, lambda: app.training.view.returncode is not None, timeout=600)
            view = app.training.view
            assert view.returncode == 0, view.error
            assert view.plan.startswith("plan for 30 min: ")
            # the start's evaluation and the last one at least, each with steps 1..3
            assert len(view.climb) >= 2 and all(len(acc) == 3 for _, acc in view.climb)
            assert view.climb[-1][0] > view.climb[0][0]  # tokens trained between them
            text = shown(app.training)
            assert "held-apart acceptance" in text and "held-out estimate" in text
            assert " ".join(f"{a:.2f}" for a in view.climb[-1][1]) in text
            assert {"mtp", "mtp-tree"} <= set(app.controls_panel.methods)
            await pilot.press("escape")
            assert not isinstance(app.screen, TrainingScreen)

    run(body())
    prompt = session.encode("def add(a, b):")
    outputs = {}
    for method in ("ar", "mtp", "mtp-tree"):
        events = list(session.decoder.run(prompt, make_controls(session.profile, method=method,
                                                                max_new_tokens=24)))
        outputs[method] = list(events[-1].summary.token_ids)
    assert outputs["mtp"] == outputs["ar"] == outputs["mtp-tree"]
