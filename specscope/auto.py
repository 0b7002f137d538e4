"""`auto` profile values: dtype, drafter weights and method chosen from this machine's costs.

A profile may say `dtype: auto`, `draft_quant: auto`, `method: auto` (the embedded default says
all three). Before anything loads, `resolve` reads this machine's measured pass costs from the
cache (core/machine.py; measured on first use, under a minute, with progress), asks the chooser
(core/chooser.py, a pure function) for the fastest predicted combination, and returns the
profile with concrete values plus the Choice, whose `reason` front ends show in one line. An
explicit value (a command-line option, or a concrete profile value) always wins: the chooser
then picks only among what is left open. The target's own weights (`quant`) are never chosen:
they change its output, not just its speed.
"""
from __future__ import annotations

from dataclasses import replace

from specscope.core.chooser import Choice, choose
from specscope.core.embedded import EMBEDDED, part_paths
from specscope.core.machine import (MachineReport, load_report, machine_info, measure_machine,
                                    shape_key)
from specscope.core.methods import NEEDS_DRAFTER
from specscope.core.model_config import read_config
from specscope.profiles import AUTO, Profile


def is_auto(profile: Profile) -> bool:
    return AUTO in (profile.dtype, profile.draft_quant, profile.method, profile.backend)


def machine_report(profile: Profile, progress=None, fresh: bool = False) -> MachineReport | None:
    """This machine's costs for the profile's pair: cached, or measured now. None when a model's
    shapes cannot be read before loading (a hub id not downloaded yet)."""
    for source in (profile.target, profile.drafter):  # a model that cannot load: say so first
        if source and source.startswith("embedded:") and source.split(":", 1)[1] in EMBEDDED:
            part_paths(EMBEDDED[source.split(":", 1)[1]])
    configs = {"target": read_config(profile.target)}
    if profile.drafter:
        configs["drafter"] = read_config(profile.drafter)
    if any(c is None for c in configs.values()):
        return None
    report = None if fresh else load_report(machine_info(profile.device))
    if report is not None and all(shape_key(c) in report.models for c in configs.values()):
        return report
    return measure_machine(configs, profile.device, progress, report)


def _fallback(profile: Profile) -> tuple[str, str]:
    """Without measurements: bfloat16 where the hardware has it natively, float32 elsewhere."""
    info = machine_info(profile.device)
    native = info.device.startswith("cuda") or any(info.has(f) for f in ("avx512_bf16", "amx_bf16"))
    return ("bfloat16" if native else "float32"), "none"


def choose_for(profile: Profile, report: MachineReport) -> Choice:
    """The chooser over this profile's open values, on the report's costs."""
    target = report.costs(read_config(profile.target))
    drafter = report.costs(read_config(profile.drafter)) if profile.drafter else None
    if profile.method in (None, AUTO):
        methods = ["ar", "draft"] if profile.drafter else ["ar"]
    else:  # a given method: model drafters cost like a chain; the rest like plain passes
        methods = ["draft"] if profile.method in NEEDS_DRAFTER else ["ar"]
    return choose(target, drafter, quant=profile.quant,
                  dtypes=None if profile.dtype == AUTO else [profile.dtype],
                  draft_quants=None if profile.draft_quant == AUTO else [profile.draft_quant],
                  methods=methods, new_tokens=min(profile.max_new_tokens, 256))


def resolve(profile: Profile, dtype: str | None = None, method: str | None = None,
            device: str | None = None, progress=None) -> tuple[Profile, Choice | None]:
    """The profile with explicit values applied and every `auto` replaced by the choice for this
    machine, and that Choice (None when nothing was auto)."""
    profile = replace(profile, dtype=dtype or profile.dtype, device=device or profile.device,
                      method=method or profile.method)
    if profile.backend == AUTO:
        profile = replace(profile, backend="torch")
    if profile.backend == "llama.cpp":  # the GGUF's own weights: no dtype or drafter weights
        profile = replace(profile, dtype="gguf" if profile.dtype == AUTO else profile.dtype,
                          draft_quant="none" if profile.draft_quant == AUTO else profile.draft_quant,
                          draft_window=0)
        return replace(profile, method=None if profile.method == AUTO else profile.method), None
    if not is_auto(profile):
        return profile, None
    report = machine_report(profile, progress)
    if report is None:
        d, q = _fallback(profile)
        return replace(profile, dtype=d if profile.dtype == AUTO else profile.dtype,
                       draft_quant=q if profile.draft_quant == AUTO else profile.draft_quant,
                       method=None if profile.method == AUTO else profile.method), None
    choice = choose_for(profile, report)
    method_auto = profile.method == AUTO
    return replace(
        profile,
        dtype=choice.dtype if profile.dtype == AUTO else profile.dtype,
        draft_quant=(choice.draft_quant if choice.method == "draft" else "none")
        if profile.draft_quant == AUTO else profile.draft_quant,
        method=choice.method if method_auto else profile.method), choice


def choice_json(choice: Choice | None) -> dict | None:
    """What `--json`, bench's meta and the TUI report about an auto choice."""
    if choice is None:
        return None
    p = choice.predicted
    return {"dtype": choice.dtype, "draft_quant": choice.draft_quant, "method": choice.method,
            "draft_len": choice.draft_len, "predicted_tokens_per_s": round(p.tokens_per_s, 3),
            "predicted_speedup": round(p.speedup, 3), "reason": choice.reason}


def choice_line(choice: Choice | None) -> str:
    return "" if choice is None else f"auto: {choice.reason}"
