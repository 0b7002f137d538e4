"""How the explorer meets the engine: options checked into Controls and a loader before anything
starts, the generation worker's run of the decoder, and the heap frozen once the models are in.

Nothing here draws: app.py builds the app from `prepare` and runs `run_engine` in its worker.
"""
from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from specscope.core.controls import Controls
from specscope.core.errors import SpecScopeError
from specscope.frontends.loading import check_options, quiet_libraries, resolve_auto
from specscope.drafting import with_drafting
from specscope.profiles import Profile, load_profile, with_backend, with_quant
from specscope.session import load_session, make_controls
from specscope.tui.generation import ENGINE_LOCK, Gate, drive
from specscope.tui.messages import EngineEvents, RunEnded
from specscope.tui.screens.loading import Loader


@dataclass
class Wiring:
    """What the app starts from: the profile (auto values applied), the engine's Controls, the
    loader of the models (None with a loaded session) and the auto choice (None without)."""
    profile: Profile
    controls: Controls
    loader: Loader | None
    choice: object | None


def prepare(profile: Profile | str | None = None, *, session=None, method: str | None = None,
            draft_len: int | None = None, max_new_tokens: int | None = None,
            temperature: float | None = None, top_p: float | None = None, seed: int = 0,
            dtype: str | None = None, device: str | None = None, trimmed: str | Path | None = None,
            vocab_top_k: int | None = None, adaptive: bool | None = None,
            adaptive_rule: str | None = None, refine_steps: int | None = None,
            draft_quant: str | None = None, quant: str | None = None,
            draft_window: int | None = None, backend: str | None = None,
            drafting: dict | None = None) -> Wiring:
    """Validate the options (raising SpecScopeError); load nothing.

    With `session` (a loaded specscope Session, as tests pass) there is no loader; otherwise the
    loader loads the profile's models (in the app's worker thread, behind a progress screen).
    """
    choice = None
    if session is not None:
        prof = session.profile
    else:
        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        # auto values are chosen before the terminal switches over (the first run on a machine
        # measures it, with progress lines); the choice is shown in the stats panel
        prof = with_drafting(with_backend(with_quant(prof, quant, draft_quant), backend),
                             **(drafting or {}))
        prof, choice = resolve_auto(prof, dtype, method, device)
        dtype = method = None  # applied to the profile
    check_options(prof, method, dtype, device, vocab_top_k, trimmed,
                  max_new_tokens or prof.max_new_tokens)
    controls = make_controls(prof, method=method, draft_len=draft_len, max_new_tokens=max_new_tokens,
                             temperature=temperature, top_p=top_p, seed=seed, vocab_top_k=vocab_top_k,
                             adaptive=adaptive, adaptive_rule=adaptive_rule, refine_steps=refine_steps,
                             draft_window=draft_window)
    loader = None
    if session is None:
        def loader(progress):
            quiet_libraries()
            return load_session(prof, dtype, device, str(trimmed) if trimmed else None, progress)
    return Wiring(prof, controls, loader, choice)


def run_engine(session, run_id: int, ids: list[int], controls: Controls, gate: Gate,
               post: Callable[[Message], object], cancelled: Callable[[], bool]) -> None:
    """One run of the session's decoder, in the generation worker: its events go to `post` in batches as
    EngineEvents, and its end (summary, or the error it failed with) as RunEnded."""

    def emit(batch, active_s: float) -> None:
        post(EngineEvents(run_id, batch, active_s))

    with ENGINE_LOCK:  # a stopped run may still be finishing its step
        try:
            summary, active_s = drive(session.decoder.run(ids, controls), gate, emit, cancelled)
        except Exception as e:  # a generation failure is shown in the UI, not raised
            message = str(e) if isinstance(e, SpecScopeError) else f"{type(e).__name__}: {e}"
            post(RunEnded(run_id, None, 0.0, message))
        else:
            post(RunEnded(run_id, summary, active_s))


def freeze_heap() -> None:
    """Exempt what exists now (models, tokenizer, widgets) from garbage collection.

    A full collection walks every object; with torch and transformers loaded that is a pause of
    ~0.2 s, and the UI thread, which allocates the most, is where it lands: mid-answer. Frozen,
    those pauses shrink to the few objects made since.
    """
    gc.collect()
    gc.freeze()
