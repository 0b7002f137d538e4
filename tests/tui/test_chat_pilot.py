"""The explorer's behaviour through Pilot, on the tiny-random session (greedy, deterministic)."""
import pytest

from specscope.core.events import Finished
from specscope.session import make_controls
from specscope.tui.screens.help import HelpScreen
from specscope.tui.widgets.draft_panel import Body, DraftPanel, is_chain

from tui_helpers import PROMPT, SIZE, parked, rendered_text, run, send, settle


def direct_ids(session, messages, **overrides):
    """What the engine alone emits for this conversation."""
    controls = make_controls(session.profile, **overrides)
    events = list(session.decoder.run(session.encode(messages), controls))
    assert isinstance(events[-1], Finished)
    return list(events[-1].summary.token_ids)


def test_a_typed_prompt_streams_the_engines_answer(make, tiny_session):
    async def body():
        app = make(max_new_tokens=40)
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot)
            await settle(pilot)
            answer = app.conversation.answers[0]
            ids = [t for _, verified in answer.steps for t in verified.emitted]
            assert ids == direct_ids(tiny_session, [{"role": "user", "content": PROMPT}],
                                     max_new_tokens=40)
            assert answer.text == app.last_summary.text and answer.text
            assert len(answer.steps) == app.last_summary.steps > 1
            assert app.messages[-1] == {"role": "assistant", "content": answer.text}
            # A second turn goes through the chat template with the first one.
            await send(pilot, "And another?")
            await settle(pilot)
            assert [m["role"] for m in app.messages] == ["user", "assistant", "user", "assistant"]
            second = [t for _, v in app.conversation.answers[1].steps for t in v.emitted]
            assert second == direct_ids(tiny_session, app.messages[:3], max_new_tokens=40)

    run(body())


def test_text_streams_step_by_step_in_teaching_mode(make):
    async def body():
        app = make(max_new_tokens=40)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("escape", "n")  # n before sending: teaching mode
            await send(pilot)
            await parked(pilot, 1)  # parked after prefill: nothing yet
            answer = app.conversation.answers[0]
            assert answer.steps == [] and app.controls_panel.state == "paused"
            seen = []
            for parks in (2, 3, 4):
                await pilot.press("n")
                await parked(pilot, parks)
                seen.append(len(answer.text))
                assert len(answer.steps) == parks - 1  # exactly one step per n
            assert 0 < seen[0] < seen[1] < seen[2]
            assert app.query_one(DraftPanel).step[1] is answer.steps[-1][1]  # panel follows
            await pilot.press("space")  # resume: runs to the end
            await settle(pilot)
            assert app.last_summary.new_tokens == 40

    run(body())


def test_draft_length_changed_mid_generation_applies_to_later_proposals(make):
    async def body():
        app = make(max_new_tokens=60, draft_len=2)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("escape", "n")
            await send(pilot)
            await parked(pilot, 1)
            await pilot.press("n")
            await parked(pilot, 2)
            await pilot.press("plus", "plus", "plus")  # 2 -> 5, while the run is parked
            assert app.controls.draft_len == 5
            await pilot.press("n")
            await parked(pilot, 3)
            await pilot.press("minus", "minus", "minus", "minus")  # 5 -> 1
            await pilot.press("space")
            await settle(pilot)
            drafts = [drafted for drafted, _ in app.conversation.answers[0].steps]
            assert (drafts[0].draft_len, len(drafts[0].tokens)) == (2, 2)
            assert (drafts[1].draft_len, len(drafts[1].tokens)) == (5, 5)
            assert all(d.draft_len <= 1 for d in drafts[2:]) and len(drafts) > 3

    run(body())


def test_temperature_and_method_change_mid_run(make):
    async def body():
        app = make(max_new_tokens=30)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("escape", "n")
            await send(pilot)
            await parked(pilot, 1)
            await pilot.press("n")
            await parked(pilot, 2)
            await pilot.press("T", "T")  # sampling at 0.2
            for _ in app.session.decoder.methods:  # cycle the methods round to ar
                if app.controls.method != "ar":
                    await pilot.press("m")
            assert (app.controls.temperature, app.controls.method) == (0.2, "ar")
            await pilot.press("space")
            await settle(pilot)
            drafts = [d for d, _ in app.conversation.answers[0].steps]
            assert drafts[0].method == "draft" and drafts[0].tokens
            assert all(d.method == "ar" and not d.tokens for d in drafts[1:])
            await pilot.press("g")  # back to greedy
            assert app.controls.temperature == 0.0

    run(body())


def test_stop_ends_the_worker_and_keeps_the_partial_answer(make):
    async def body():
        app = make(max_new_tokens=60)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("escape", "n")
            await send(pilot)
            await parked(pilot, 1)
            await pilot.press("n")
            await parked(pilot, 2)
            worker = next(w for w in app.workers if w.group == "generate")
            await pilot.press("s")
            await settle(pilot)
            assert worker.is_finished and worker.is_cancelled
            answer = app.conversation.answers[0]
            assert len(answer.steps) == 1 and "[stopped]" in answer.render().plain
            assert app.messages[-1] == {"role": "assistant", "content": answer.text}
            assert app.last_summary is None and app.running is None
            # Still usable: r regenerates the answer in full (the pause ended with the run).
            await pilot.press("r")
            await settle(pilot)
            assert len(app.conversation.answers) == 1
            assert app.last_summary.new_tokens == 60

    run(body())


def test_help_screen_opens_and_closes(make):
    async def body():
        app = make()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("escape", "question_mark")
            assert isinstance(app.screen, HelpScreen)
            text = " ".join(" ".join(rendered_text(s).split()) for s in app.screen.query("Static"))
            for words in ("Pause / resume", "Draft length + 1", "Regenerate", "Measure plain",
                          "Hide / show rejected", "Quit"):
                assert words in text
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            await pilot.press("f1")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("question_mark")
            assert not isinstance(app.screen, HelpScreen)

    run(body())


def test_clicking_a_token_selects_its_step(make):
    async def body():
        app = make(max_new_tokens=30)
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot)
            await settle(pilot)
            answer = app.conversation.answers[0]
            await pilot.click(answer, offset=(0, 0))  # the first cell belongs to step 0
            await pilot.pause()
            assert app.conversation.selection == (0, 0)
            assert app.query_one(DraftPanel).step[1] is answer.steps[0][1]
            await pilot.press("right_square_bracket")
            assert app.query_one(DraftPanel).step[1] is answer.steps[1][1]
            await pilot.press("l")
            assert app.conversation.selection is None
            assert app.query_one(DraftPanel).step[1] is answer.steps[-1][1]

    run(body())


def test_baseline_measures_plain_decoding_and_clear_resets(make):
    async def body():
        app = make(max_new_tokens=20, snapshot=False)
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot)
            await settle(pilot)
            await pilot.press("b")
            await settle(pilot)
            stats = app.stats_panel
            assert stats.baseline is not None and stats.baseline.new_tokens == 20
            assert "measured" in stats.speedup()[1]
            await pilot.press("c")
            await pilot.pause()
            assert app.messages == [] and app.conversation.answers == []
            assert stats.baseline is None

    run(body())


def test_vocab_control_says_when_no_trimmed_vocabulary_is_loaded(make, tiny_session):
    async def body():
        assert tiny_session.vocab is None
        app = make()
        notes = []
        app.notify = lambda message, **kw: notes.append(message)
        async with app.run_test(size=SIZE) as pilot:
            assert "no trimmed vocabulary" in rendered_text(app.controls_panel)
            await pilot.press("escape", "v")
            await pilot.pause()
            assert app.controls.vocab_top_k is None
            assert any("no trimmed vocabulary" in n for n in notes)

    run(body())


def test_a_tree_drafters_steps_are_drawn_as_trees(make, tiny_session):
    if "tree" not in tiny_session.decoder.methods:
        pytest.skip("no tree drafter in this session")

    async def body():
        app = make(max_new_tokens=40, method="tree")
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot)
            await settle(pilot)
            steps = app.conversation.answers[0].steps
            branching = [i for i, (d, _) in enumerate(steps) if not is_chain(d.parents)]
            assert branching, "the tiny drafter is unsure often: some step should branch"
            app.conversation.select((0, branching[0]))
            await pilot.pause()
            text = rendered_text(app.query_one(DraftPanel).query_one(Body))
            assert "context (" in text and "├──" in text and "target's" in text

    run(body())
