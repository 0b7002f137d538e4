"""`specscope doctor`: what this machine is, what a pass costs on it, and what follows.

Reads the per-machine cache (core/machine.py) or measures now; prints a table a person reads in
ten seconds (or the same numbers as JSON) and the choice `auto` makes from them (auto.py).
"""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from specscope.cli.options import Device, Profile, friendly_errors


@friendly_errors
def doctor(
    profile: Profile = None,
    device: Device = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Measure again, ignoring this machine's cached numbers.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="The measurements and the choice as one JSON object.")] = False,
) -> None:
    """Measure this machine (instruction sets, memory bandwidth, the cost of a target pass of 1-16
    tokens, of a drafted token and of prompt reading, per dtype and weight format) and say which
    dtype, drafter weights and method `auto` chooses here, and why. Cached per machine."""
    from dataclasses import replace

    from rich.console import Console

    from specscope.auto import choice_json, choose_for, machine_report
    from specscope.core.errors import SpecScopeError
    from specscope.core.models import resolve_device
    from specscope.frontends.loading import loading_progress, quiet_libraries
    from specscope.profiles import AUTO, load_profile

    prof = load_profile(profile)
    if device:
        resolve_device(device)
        prof = replace(prof, device=device)
    # doctor shows every option, so it chooses as the auto profile would, whatever this one pins
    # (and on llama.cpp too where it can run the profile's GGUF files)
    prof = replace(prof, dtype=AUTO, draft_quant=AUTO if prof.drafter else "none", method=AUTO,
                   backend=AUTO)
    err = Console(stderr=True)
    quiet_libraries()
    with loading_progress(err, lines=True) as progress:
        report = machine_report(prof, progress, fresh=fresh)
    if report is None:
        raise SpecScopeError(f"cannot read the shapes of profile '{prof.name}''s models without "
                             "loading them (a hub id not downloaded yet): run it once, then doctor")
    choice = choose_for(prof, report)
    if json_out:
        print(json.dumps({"machine": report.to_json(), "choice": choice_json(choice),
                          "ranked": [o.__dict__ for o in choice.ranked]}))
        return
    render(report, prof, choice, Console(highlight=False, soft_wrap=True))


def render(report, prof, choice, out) -> None:
    from rich import box
    from rich.table import Table

    from specscope.core.machine import PASS_ROWS
    from specscope.core.model_config import read_config

    info = report.info
    out.print(f"[bold]{info.cpu}[/bold] ({info.arch}), {info.threads} threads, torch {info.torch} "
              f"({info.capability} kernels{', oneDNN capped at ' + info.onednn_isa if info.onednn_isa else ''}), "
              f"memory {report.memory_gbs:.1f} GB/s")
    out.print(f"instruction sets: {' '.join(info.flags) or 'none of note'}  "
              f"(measured in {report.seconds:.0f} s; cached per machine)", style="dim")
    target = report.costs(read_config(prof.target))
    t = Table(title=f"target {prof.target}: ms a pass over N tokens (in 1-token passes)",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ["format", *(f"{r} tok" for r in PASS_ROWS), "prompt tok/s"]:
        t.add_column(name, justify="left" if name == "format" else "right", no_wrap=True)
    for (d, q), c in target.items():
        one = c.t(1)
        t.add_row(label(d, q), *(f"{1e3 * c.t(r):.0f}" if r == 1 else f"{1e3 * c.t(r):.0f} ({c.t(r) / one:.1f})"
                                 for r in PASS_ROWS), f"{c.prefill_tps:.0f}")
    out.print(t)
    if prof.drafter:
        drafter = report.costs(read_config(prof.drafter))
        t = Table(title=f"drafter {prof.drafter}: a drafted token", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("format", "ms", "target passes", "prompt tok/s"):
            t.add_column(name, justify="left" if name == "format" else "right", no_wrap=True)
        for (d, q), c in drafter.items():
            base = target.get((d, prof.quant)) or next(  # a GGUF: the target's GGUF as stored
                (c for (td, _), c in target.items() if td == d == "gguf"), None)
            t.add_row(label(d, q), f"{1e3 * c.t(1):.1f}", f"{c.t(1) / base.t(1):.2f}" if base else "-",
                      f"{c.prefill_tps:.0f}")
        out.print(t)
    p = choice.predicted
    out.print(f"[bold]auto chooses[/bold] {label(choice.dtype, 'none')}"
              + (f", drafter {choice.draft_quant}" if choice.method == "draft" else "")
              + f", method {choice.method}" + (", draft length auto" if choice.method != "ar" else "")
              + f": predicted {p.tokens_per_s:.1f} tok/s over a 256-token prompt "
              f"({p.decode_tokens_per_s:.1f} decoding), {p.speedup:.2f}x plain decoding")
    out.print(choice.reason, style="dim")
    if report.busy >= 0.3:
        out.print(f"note: other processes kept {report.busy:.1f} cores busy while these were "
                  "measured: run `specscope doctor --fresh` on a quiet machine", style="yellow")


def label(dtype: str, quant: str) -> str:
    """'bfloat16 int4', 'float32' (unquantized weights say nothing), 'llama.cpp q4_k_m' (a
    GGUF as stored, on llama.cpp)."""
    return ("llama.cpp" if dtype == "gguf" else dtype) + (f" {quant}" if quant != "none" else "")
