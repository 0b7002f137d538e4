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
    """The chooser over this profile's open values, on the report's costs; with a trained
    FastMTP head, mtp too (its held-out acceptance, its drafted token's estimated cost), and
    the last bench's measured speedups on this machine where there are any."""
    from specscope.core import last_bench
    from specscope.core.mtp import artifact_path, read_meta

    config = read_config(profile.target)
    target = report.costs(config)
    drafter = report.costs(read_config(profile.drafter)) if profile.drafter else None
    head = artifact_path(profile.name)
    head = head if head.is_file() else None
    acceptance, ratio = {}, 0.1
    if profile.method in (None, AUTO):
        methods = ["ar", "draft"] if profile.drafter else ["ar"]
        if head is not None and profile.quant == "none":
            meta = read_meta(head)[0]
            estimate = meta.get("training", {}).get("estimate_acceptance")
            if estimate:
                # mtp-tree: only from a bench's measurement (the chain model cannot predict it)
                methods += ["mtp", "mtp-tree"]
                acceptance = {"mtp": estimate}
                ratio = mtp_token_ratio(config, int(meta.get("k", 8192)))
    else:  # a given method: model drafters cost like a chain; the rest like plain passes
        methods = ["draft"] if profile.method in NEEDS_DRAFTER else ["ar"]
    return choose(target, drafter, quant=profile.quant,
                  dtypes=None if profile.dtype == AUTO else [profile.dtype],
                  draft_quants=None if profile.draft_quant == AUTO else [profile.draft_quant],
                  methods=methods, new_tokens=min(profile.max_new_tokens, 256),
                  acceptance=acceptance, mtp_token_ratio=ratio,
                  measured=last_bench.load(profile.name, head))


def mtp_token_ratio(config, k: int) -> float:
    """A FastMTP drafted token's cost in target passes, estimated from the weights each reads
    (decoding is memory-bound): the head's projection, one decoder layer and K rows of the LM
    head, against the target's layers and whole LM head."""
    c = getattr(config, "get_text_config", lambda: config)()
    h, inter, layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    heads = c.num_attention_heads
    kv = getattr(c, "num_key_value_heads", None) or heads
    kv_dim = h // heads * kv
    layer = 2 * h * h + 2 * h * kv_dim + 3 * h * inter
    head = 2 * h * h + layer + min(k, c.vocab_size) * h
    return head / (layers * layer + c.vocab_size * h)


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
