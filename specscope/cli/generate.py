"""`specscope generate`: stream one answer to the terminal (or JSON events), then its stats."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from specscope.cli.options import ApiKey, Engine, TargetUrl, remote_profile
from specscope.cli.options import DraftDevice, DraftThreads, Overlap
from specscope.cli.options import (Backend, Device, DraftLen, DraftQuant, DraftWindow, Dtype, MaxNew, Method,
                                   Profile, Quant, RefineSteps, Seed, Temperature, TopK, TopP,
                                   Trimmed, VocabTopK, friendly_errors, parse_draft_len,
                                   read_prompt)
from specscope.core.refine_steps import parse_refine_steps


@friendly_errors
def generate(
    prompt: Annotated[Optional[str], typer.Argument(metavar="PROMPT", help="The prompt (use - to read it from stdin), or --prompt-file.", show_default=False)] = None,
    prompt_file: Annotated[Optional[str], typer.Option("--prompt-file", "-f", metavar="FILE", help="Read the prompt from this file (- for stdin) instead, e.g. a long document.")] = None,
    profile: Profile = None,
    method: Method = None,
    draft_len: DraftLen = None,
    max_new_tokens: MaxNew = None,
    temperature: Temperature = None,
    top_p: TopP = None,
    top_k: TopK = None,
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
    stop: Annotated[Optional[list[str]], typer.Option("--stop", metavar="TEXT", help="Stop after this string (repeatable).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per event a line; the last is the summary.")] = False,
    hide_rejected: Annotated[bool, typer.Option("--hide-rejected", help="Do not show rejected draft tokens.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Send the prompt as is, without the chat template.")] = False,
) -> None:
    """Stream an answer, colouring accepted drafts, rejected drafts and the target's own tokens."""
    from specscope.frontends.generate import run_generate

    prompt = read_prompt(prompt, prompt_file)
    draft_len, adaptive, rule = parse_draft_len(draft_len)
    profile = remote_profile(profile, target_url, engine, api_key)
    run_generate(prompt=prompt, profile=profile, method=method, draft_len=draft_len,
                 adaptive=adaptive, adaptive_rule=rule,
                 max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                 seed=seed, dtype=dtype, device=device, trimmed=trimmed, vocab_top_k=vocab_top_k,
                 stop=stop or [], json_out=json_out, hide_rejected=hide_rejected, raw=raw,
                 refine_steps=parse_refine_steps(refine_steps), draft_quant=draft_quant, quant=quant,
                 draft_window=draft_window, backend=backend,
                 drafting=dict(overlap=overlap, draft_threads=draft_threads, draft_device=draft_device))
