"""A long session holds: 1,000 steps across many answers, method and length changes, resizes down
to 80x24 and back. Memory is checked against the start (a leak check, not a speed threshold);
redraw costs are reported, not asserted (run with -s to see them)."""
import gc
import os

import pytest

from specscope.core.events import Finished
from specscope.session import make_controls
from specscope.tui.widgets.draft_panel import DraftPanel

from tui_helpers import SIZE, rendered_text, run, send, settle, until

STEPS = 1000
SIZES = [(80, 24), SIZE, (100, 30), SIZE]
PROMPTS = ["Write a haiku about caches.", "Explain a KV cache.", "def quicksort(arr):"]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
def test_a_thousand_steps_with_changes_and_resizes_hold(make, tiny_session):
    async def body():
        app = make(max_new_tokens=48)
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot, PROMPTS[0])
            await settle(pilot)
            gc.collect()
            start = rss_mb()
            steps, answers, costs, methods = 0, 0, [], set()
            while steps < STEPS:
                answers += 1
                if answers % 3 == 0:
                    await pilot.press("m")  # next drafting method (ar, draft, tree, lookup, ...)
                await pilot.press("plus" if answers % 4 < 2 else "minus")
                if answers % 5 == 0:
                    await pilot.resize_terminal(*SIZES[(answers // 5) % len(SIZES)])
                runs = app.run_id
                if answers % 8 == 0:  # a fresh conversation
                    await pilot.press("c")
                    await until(pilot, lambda: not app.conversation.answers)
                    await send(pilot, PROMPTS[answers % len(PROMPTS)])
                else:
                    await pilot.press("r")  # regenerate the last answer with the new settings
                await until(pilot, lambda: app.run_id > runs and app.running is None)
                await settle(pilot)
                answer = app.conversation.answers[-1]
                assert app.last_summary is not None and answer.steps, "an answer failed"
                steps += len(answer.steps)
                methods.add(app.controls.method)
                costs.append(app.pacer.cost * 1e3)
                if answers % 5 == 0:  # the screen still draws its panels at this size
                    assert "step" in rendered_text(app.query_one("#draft-body"))
            await pilot.resize_terminal(*SIZE)
            gc.collect()
            end = rss_mb()
            # The answer on screen is still the engine's: greedy, so any method gives the target's.
            ids = [t for _, v in app.conversation.answers[-1].steps for t in v.emitted]
            events = list(tiny_session.decoder.run(
                tiny_session.encode(app.messages[:-1]),
                make_controls(tiny_session.profile, method="ar", max_new_tokens=48)))
            assert isinstance(events[-1], Finished) and ids == list(events[-1].summary.token_ids)
            assert isinstance(app.query_one(DraftPanel).step, tuple)
            tenth = max(1, len(costs) // 10)
            print(f"\nsoak: {steps} steps, {answers} answers, methods {sorted(methods)}; RSS "
                  f"{start:.0f} -> {end:.0f} MB; redraw cost (ms, smoothed) first tenth "
                  f"{sum(costs[:tenth]) / tenth:.2f}, last tenth {sum(costs[-tenth:]) / tenth:.2f}")
            assert len(methods) >= 4
            assert end < start + 200, f"memory grew {end - start:.0f} MB over {steps} steps"

    run(body())
