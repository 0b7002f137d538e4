"""`specscope chat`: the interactive explorer (specscope/tui/), once its options are checked."""
from __future__ import annotations

from specscope.cli.options import ApiKey, Engine, TargetUrl, remote_profile
from specscope.cli.options import DraftDevice, DraftThreads, Overlap
from specscope.cli.options import (Backend, Device, DraftLen, DraftQuant, DraftWindow, Dtype, MaxNew, Method,
                                   Profile, Quant, RefineSteps, Seed, Temperature, TopP, Trimmed,
                                   VocabTopK, friendly_errors, parse_draft_len, require_terminal)
from specscope.core.refine_steps import parse_refine_steps


@friendly_errors
def chat(
    profile: Profile = None,
    method: Method = None,
    draft_len: DraftLen = None,
    max_new_tokens: MaxNew = None,
    temperature: Temperature = None,
    top_p: TopP = None,
    seed: Seed = 0,
    dtype: Dtype = None,
    device: Device = None,
    trimmed: Trimmed = None,
    vocab_top_k: VocabTopK = None,
    refine_steps: RefineSteps = None,
    draft_quant: DraftQuant = None,
    quant: Quant = None,
    draft_window: DraftWindow = None,
    backend: Backend = None,
    target_url: TargetUrl = None,
    engine: Engine = None,
    api_key: ApiKey = None,
    overlap: Overlap = None,
    draft_threads: DraftThreads = None,
    draft_device: DraftDevice = None,
) -> None:
    """The interactive explorer (Textual TUI). Needs a terminal."""
    from specscope.tui.app import make_app

    draft_len, adaptive, rule = parse_draft_len(draft_len)
    profile = remote_profile(profile, target_url, engine, api_key)
    explorer = make_app(profile, method=method, draft_len=draft_len, max_new_tokens=max_new_tokens,
                        temperature=temperature, top_p=top_p, seed=seed, dtype=dtype, device=device,
                        trimmed=trimmed, vocab_top_k=vocab_top_k, adaptive=adaptive,
                        adaptive_rule=rule,
                        refine_steps=parse_refine_steps(refine_steps),
                        draft_quant=draft_quant, quant=quant,
                        draft_window=draft_window, backend=backend,
                        drafting=dict(overlap=overlap, draft_threads=draft_threads,
                                      draft_device=draft_device))  # checks every option, loads nothing
    require_terminal("chat")
    try:
        explorer.run()
    finally:
        if explorer.session is not None:  # the drafter's worker, if any, goes with the app
            explorer.session.close()
