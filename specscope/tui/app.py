"""`specscope chat`: the Textual explorer of speculative decoding.

`make_app` builds the app for both the CLI and the tests: it validates every option first (a
SpecScopeError before anything starts), then either takes a loaded session (tests) or loads the
profile's models behind a progress screen. Generation runs in a thread worker that posts batches
of engine events as messages; the widgets append them; keys change the shared `Controls`, which
the engine reads at its next step boundary.

Beside this file: wiring.py (options into Controls and a loader; the worker's engine run),
run_state.py (which run is current and what it sent back), generation.py (pause/step and
batching in the worker), actions.py (the keys on settings), keys.py (every key).
"""
from __future__ import annotations

import asyncio
from dataclasses import replace

from textual import work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Header, Input
from textual.worker import get_current_worker

from specscope.core.controls import Controls
from specscope.core.errors import SpecScopeError
from specscope.core.events import Prefilling
from specscope.drafting import drafting_label
from specscope.profiles import Profile, quant_label
from specscope.tui import keys
from specscope.tui.actions import SettingActions
from specscope.tui.generation import Gate
from specscope.tui.messages import EngineEvents, RunEnded, StepSelected
from specscope.tui.pacing import Pacer
from specscope.tui.run_state import RunState
from specscope.tui.training import TrainingActions
from specscope.tui.screens.loading import Loaded, Loader, LoadingScreen
from specscope.tui.widgets.controls_panel import ControlsPanel
from specscope.tui.widgets.conversation import Conversation
from specscope.tui.widgets.draft_panel import DraftPanel
from specscope.tui.widgets.key_bar import KeyBar
from specscope.tui.widgets.legend import Legend
from specscope.tui.widgets.stats_panel import Baseline, StatsPanel
from specscope.tui.wiring import freeze_heap, prepare, run_engine


COMPACT_HEIGHT = 34  # below this many rows the app drops its header, legend and controls panel


class SpecScopeApp(SettingActions, TrainingActions, RunState, App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "specscope"
    AUTO_FOCUS = "#prompt"
    BINDINGS = keys.BINDINGS

    def __init__(self, profile: Profile, controls: Controls, loader: Loader | None = None,
                 session=None, snapshot: bool = False) -> None:
        super().__init__()
        self.profile = profile
        self.controls = controls  # shared with the engine: read at every step boundary
        self.loader = loader
        self.session = session
        self.snapshot = snapshot  # hide clock readings (tok/s, seconds) for snapshot tests
        self.gate = Gate()
        self.messages: list[dict[str, str]] = []  # the conversation, for the chat template
        self.init_run_state()  # run_id, running, answer, last_summary, ... (run_state.py)
        self.pacer = Pacer()
        self._redraw_timer = None
        self.sub_title = profile.name + (f" ({quant_label(profile)})" if quant_label(profile) else "")

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Legend(id="legend")
                yield Conversation(id="conversation")
                yield Input(placeholder="Type a prompt and press Enter  (Esc: control keys · ?: help)",
                            id="prompt")
            with Vertical(id="right"):
                yield DraftPanel(show_timings=not self.snapshot, id="draft")
                yield StatsPanel(show_timings=not self.snapshot, id="stats")
                yield ControlsPanel(self.controls, id="controls")
        yield KeyBar()

    @property
    def conversation(self) -> Conversation:
        return self.query_one(Conversation)

    @property
    def stats_panel(self) -> StatsPanel:
        return self.query_one(StatsPanel)

    @property
    def controls_panel(self) -> ControlsPanel:
        return self.query_one(ControlsPanel)

    @property
    def draft_panel(self) -> DraftPanel:
        return self.query_one(DraftPanel)

    def on_resize(self, event) -> None:
        self.set_class(event.size.height < COMPACT_HEIGHT, "-compact")

    def on_mount(self) -> None:
        self.set_class(self.size.height < COMPACT_HEIGHT, "-compact")
        prompt = self.query_one("#prompt", Input)
        prompt.cursor_blink = not self.snapshot
        prompt.focus()
        if self.session is not None:
            self.session_ready(self.session)
        else:
            self.controls_panel.state = "loading"
            title = f"Loading profile '{self.profile.name}': {self.profile.target}" + (
                f" + {self.profile.drafter}" if self.profile.drafter else "")
            self.push_screen(LoadingScreen(self.loader, title), callback=self.loaded)

    def loaded(self, result: Loaded) -> None:
        """The loading screen is gone: its typed prompt goes to the prompt box, or is sent."""
        self.session_ready(result.session)
        if not (result.send and self.send_prompt(result.prompt)):
            prompt = self.query_one("#prompt", Input)
            prompt.value = result.prompt
            prompt.cursor_position = len(result.prompt)

    def session_ready(self, session) -> None:
        self.session = session
        if session.profile.backend != "torch":  # the GGUF's types are known once loaded
            auto = self.sub_title.partition(" · ")[2]
            self.sub_title = f"{session.profile.name} ({quant_label(session.profile)})" + (
                f" · {auto}" if auto else "")
        if not self.snapshot:  # what runs, and its verify-cost curve here (a clock reading)
            self.sub_title += backend_note(session.profile.backend, session.decoder.verify_curve)
        if self.loader is not None:  # this process is ours: see freeze_heap
            freeze_heap()
        vocab = session.vocab  # a TrimmedVocab: any size up to its full ranking can be chosen
        self.controls_panel.worker = drafting_label(session.profile) if session.worker else ""
        self.controls_panel.set_session(session.decoder.methods,
                                        None if vocab is None else len(vocab.ranking),
                                        None if vocab is None else vocab.k)
        self.show_state()
        self.query_one("#prompt", Input).focus()

    # Sending prompts and running the engine.

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.send_prompt(event.value):
            event.input.value = ""

    def send_prompt(self, text: str) -> bool:
        """Start answering `text`; False (and why, as a notification) when it cannot be sent."""
        text = text.strip()
        if not text:
            return False
        if self.session is None:
            self.notify("The models are still loading.", severity="warning")
            return False
        if self.running:
            self.notify("An answer is being generated: s stops it.", severity="warning")
            return False
        self.messages.append({"role": "user", "content": text})
        self.conversation.add_user(text)
        self.conversation.focus()  # letter keys now act as controls
        self.start_answer()
        return True

    def start_answer(self) -> None:
        try:
            ids = self.session.encode(self.messages)
            self.session.decoder.check_prompt(ids)
            drafter = self.session.decoder.drafter(self.controls.method)
        except SpecScopeError as e:
            self.messages.pop()
            self.show_error(str(e))
            return
        self.last_prompt_ids = ids
        # A new answer runs, whatever pause an earlier run left; n just before makes it wait.
        if self.step_next:
            self.gate.pause()
        else:
            self.gate.resume()
        self.step_next = False
        self.answer = self.conversation.add_answer()
        self.stats_panel.reset(self.controls.method, self.session.decoder.param_ratio(drafter))
        self.begin(ids, self.controls, "answer", self.gate)

    def begin(self, ids: list[int], controls: Controls, kind: str, gate: Gate) -> None:
        self.new_run(kind)
        self.show_state()
        # Start the engine once the screen has settled (new turn mounted, focus moved): that
        # one-off redraw would otherwise compete with the engine's first steps.
        self.call_after_refresh(self.call_after_refresh, self.launch, self.run_id, ids, controls, gate)

    def show_state(self, state: str | None = None) -> None:
        """The run's state in the controls panel (by default what the app is doing); a paused
        answer also says so in the conversation, after its text, with the keys that go on."""
        self.controls_panel.state = state or self.run_label()
        if self.answer is not None:
            self.answer.set_paused(self.running == "answer" and self.gate.paused)

    def show_prefill(self, event: Prefilling) -> None:
        """A long prompt's prefill (minutes on a CPU) as the run's state, until it is read."""
        who = "reading prompt" if event.model == "target" else "drafter reading"
        self.show_state(f"{who} {event.done:,}/{event.total:,}" if event.done < event.total else None)

    def launch(self, run_id: int, ids: list[int], controls: Controls, gate: Gate) -> None:
        if self._stopping or run_id != self.run_id:  # stopped before it started
            self.post_message(RunEnded(run_id, None, 0.0))
        else:
            self.generate(run_id, ids, controls, gate)

    @work(thread=True, group="generate", exit_on_error=False)
    def generate(self, run_id: int, ids: list[int], controls: Controls, gate: Gate) -> None:
        worker = get_current_worker()
        run_engine(self.session, run_id, ids, controls, gate, self.post_message,
                   lambda: worker.is_cancelled)

    def on_engine_events(self, message: EngineEvents) -> None:
        """Fold the batch in (cheap); redraw now when parked, else when the pacer allows."""
        if message.run_id != self.run_id:
            return
        for event in message.events:
            if isinstance(event, Prefilling):
                self.show_prefill(event)
        if self.running == "baseline":  # measured by its summary only; nothing to show
            return
        stats = self.stats_panel
        self.fold(message.events, stats)
        stats.active_s = message.active_s
        if self.gate.paused:
            self.redraw()
        elif self._redraw_timer is None:
            # A plain asyncio timer: Textual's skips a deadline that passed while the loop was busy.
            self._redraw_timer = asyncio.get_running_loop().call_later(self.pacer.delay(), self.redraw)

    def redraw(self) -> None:
        """Hand the pending steps to the answer and refresh the panels, then learn the cost."""
        if self._redraw_timer is not None:
            self._redraw_timer.cancel()
            self._redraw_timer = None
        token = self.pacer.begin()
        steps = self.take_steps()
        if steps:
            self.answer.add_steps(steps)
            if self.conversation.selection is None:
                self.draft_panel.show(*steps[-1], note="(latest)", stepping=self.gate.paused)
        self.stats_panel.refresh_view()
        self.call_after_refresh(self.pacer.end, token)

    def on_run_ended(self, message: RunEnded) -> None:
        if message.run_id != self.run_id:
            return
        kind, self.running = self.running, None
        self.show_state()
        if message.error:
            self.show_error(message.error)
        if kind == "baseline":
            s = message.summary
            if s is not None and message.active_s > 0:
                self.stats_panel.baseline = Baseline(s.new_tokens / message.active_s, s.new_tokens,
                                                     s.verify_s / s.steps if s.steps else None)
                self.stats_panel.refresh_view()
        elif kind == "answer":
            self.redraw()
            self.last_summary = message.summary
            if message.error:
                self.answer.set_note("[failed]", "bold red")
            elif message.summary is None:
                self.answer.set_note("[stopped]")
                self.stats_panel.note = " · stopped"
            self.messages.append({"role": "assistant", "content": self.answer.text})
            self.stats_panel.active_s = message.active_s or self.stats_panel.active_s
            if message.summary is not None:
                self.stats_panel.note = f" · {message.summary.stop_reason}"
            self.stats_panel.refresh_view()
        if self.after_run is not None:
            then, self.after_run = self.after_run, None
            self.call_next(then)

    def show_error(self, error: str) -> None:
        self.conversation.add_error(error)
        self.notify(error, title="error", severity="error")

    def on_step_selected(self, message: StepSelected) -> None:
        if message.verified is not None:
            self.draft_panel.show(message.drafted, message.verified,
                                  note="(selected; l: live)")
        elif self.conversation.answers and self.conversation.answers[-1].steps:
            self.draft_panel.show(*self.conversation.answers[-1].steps[-1], note="(latest)")

    # Actions on runs (actions.py has those on settings and the view; keys.py lists the keys).

    def action_pause(self) -> None:
        """Pause or resume the running answer; a pause never outlives it (see start_answer)."""
        if self.running and self.gate.paused:
            self.gate.resume()
        elif self.running:
            self.gate.pause()
        elif self.step_next:
            self.step_next = False  # the next answer runs freely after all
        else:
            self.notify("Nothing is generating: space pauses an answer while it runs "
                        "(n before sending makes the next answer wait for n).")
        self.show_state()

    def action_step(self) -> None:
        if self.gate.paused and self.draft_panel.advance():  # a refined block's next pass first
            return
        if self.running:
            self.gate.step()
        else:
            self.step_next = True
            self.notify("Teaching mode: the next answer stops once it has read the prompt; "
                        "then each n runs one draft-verify step and space runs on.")
        self.show_state()

    def action_stop(self) -> None:
        if self.running:
            self._stopping = True
            self.workers.cancel_group(self, "generate")
            self.gate.wake()
            self.show_state("stopping")

    def after_stopping(self, then) -> None:
        """Run `then` now, or once the running answer has stopped."""
        if self.running:
            self.after_run = then
            self.action_stop()
        else:
            self.call_next(then)

    def action_regenerate(self) -> None:
        if self.session is not None:
            self.after_stopping(self.regenerate)

    async def regenerate(self) -> None:
        if self.messages and self.messages[-1]["role"] == "assistant":
            self.messages.pop()
            await self.conversation.remove_last_answer()
        if not self.messages:
            self.notify("Nothing to regenerate: send a prompt first.")
            return
        if self.controls.temperature > 0:  # a new sample rather than the same one
            self.controls.seed += 1
            self.controls_panel.refresh()
        self.start_answer()

    def action_clear(self) -> None:
        self.after_stopping(self.clear)

    async def clear(self) -> None:
        self.messages = []
        self.last_prompt_ids = None
        await self.conversation.clear()
        self.draft_panel.clear()
        self.stats_panel.baseline = None
        self.stats_panel.reset("", 0.0)

    def action_baseline(self) -> None:
        if self.session is None or self.running:
            self.notify("Wait for the answer to finish (s stops it).", severity="warning")
            return
        if self.last_prompt_ids is None:
            self.notify("Send a prompt first: the baseline reruns it with plain decoding.")
            return
        tokens = len(self.stats_panel.stats.token_ids) or self.controls.max_new_tokens
        controls = replace(self.controls, method="ar", max_new_tokens=tokens, stop=[])
        self.notify(f"Measuring plain decoding (ar) on the last prompt, {tokens} tokens…")
        self.begin(self.last_prompt_ids, controls, "baseline", Gate())

    async def action_quit(self) -> None:
        self.stop_training()
        self.workers.cancel_group(self, "generate")
        self.gate.wake()
        self.exit()


def backend_note(backend: str, curve: dict[int, float] | None) -> str:
    """' · torch: verify 2/4/8/16 tok = 1.0/1.1/1.2/1.5 passes' (this machine's measured curve,
    when `doctor` or auto measured it), ' · torch' without one."""
    rows = [r for r in sorted(curve or {}) if r > 1]
    if not rows:
        return f" · {backend}"
    return (f" · {backend}: verify {'/'.join(map(str, rows))} tok = "
            f"{'/'.join(f'{curve[r]:.1f}' for r in rows)} passes")


def make_app(profile: Profile | str | None = None, *, session=None, snapshot: bool = False,
             **options) -> SpecScopeApp:
    """Validate the options (raising SpecScopeError), then build the app.

    With `session` (a loaded specscope Session, as tests pass) nothing loads; otherwise the app
    loads the profile's models in a worker thread behind a progress screen. `options` are
    `wiring.prepare`'s (method, draft_len, max_new_tokens, temperature, ...).
    """
    wired = prepare(profile, session=session, **options)
    app = SpecScopeApp(wired.profile, wired.controls, wired.loader, session, snapshot)
    choice = wired.choice
    if choice is not None:  # what the machine's measurements chose, in the header
        picked = ("llama.cpp" if choice.dtype == "gguf" else choice.dtype) + (
            f", drafter {choice.draft_quant}" if choice.method == "draft" else "")
        app.sub_title += f" · auto: {picked}, {choice.method}"
    return app
