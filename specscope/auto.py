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
from specscope.core.machine import (GGUF, MachineReport, gguf_format, load_report, machine_info,
                                    measure_machine, shape_key)
from specscope.core.methods import NEEDS_DRAFTER
from specscope.core.model_config import read_config
from specscope.profiles import AUTO, Profile


def is_auto(profile: Profile) -> bool:
    return AUTO in (profile.dtype, profile.draft_quant, profile.method, profile.backend)


def llamacpp_open(profile: Profile) -> bool:
    """Whether `backend: auto` may choose llama.cpp for this profile (or `method: auto` choose on
    llama.cpp's measured costs, `backend: llama.cpp`): llama-cpp-python installed,
    GGUF sources, and nothing asked that only torch does (a dtype, quantized weights, a trimmed
    head, a method reading hidden states, another device). Otherwise auto means torch, silently."""
    from specscope.core.llamacpp import available
    from specscope.core.llamacpp_load import is_gguf_source
    from specscope.core.methods import NEEDS_HIDDEN

    sources = [s for s in (profile.target, profile.drafter) if s]
    return (profile.backend in (AUTO, "llama.cpp") and available() and not profile.target_url
            and all(is_gguf_source(s) for s in sources) and profile.device == "cpu"
            and profile.dtype in (AUTO, GGUF) and profile.quant == "none"
            and profile.draft_quant in (AUTO, "none") and not profile.trimmed
            and profile.method not in NEEDS_HIDDEN)


def machine_report(profile: Profile, progress=None, fresh: bool = False) -> MachineReport | None:
    """This machine's costs for the profile's pair: cached, or measured now (the GGUF files on
    llama.cpp too where `backend: auto` may choose it). None when a model's shapes cannot be
    read before loading (a hub id not downloaded yet)."""
    for source in (profile.target, profile.drafter):  # a model that cannot load: say so first
        if source and source.startswith("embedded:") and source.split(":", 1)[1] in EMBEDDED:
            part_paths(EMBEDDED[source.split(":", 1)[1]])
    configs = {"target": read_config(profile.target)}
    if profile.drafter:
        configs["drafter"] = read_config(profile.drafter)
    if any(c is None for c in configs.values()):
        return None
    ggufs = {}
    if llamacpp_open(profile):
        from specscope.core.llamacpp_load import gguf_file

        ggufs = {role: gguf_file(s, progress) for role, s in
                 (("target", profile.target), ("drafter", profile.drafter)) if s}
    report = None if fresh else load_report(machine_info(profile.device))
    if report is not None and all(shape_key(c) in report.models for c in configs.values()) \
            and all(gguf_format(p) in report.models[shape_key(configs[r])] for r, p in ggufs.items()):
        return report
    return measure_machine(configs, profile.device, progress, report, ggufs=ggufs)


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
    # llama.cpp's formats ("gguf", its file's type) run the target's weights as stored: open
    # where auto may choose the backend, as the target's own format ("gguf", quant) otherwise shut
    gguf = llamacpp_open(profile)
    target = {(d, profile.quant if d == GGUF else q): c for (d, q), c in target.items()
              if d != GGUF or (gguf and q == gguf_type(profile.target))}
    if drafter is not None:
        drafter = {(d, q): c for (d, q), c in drafter.items()
                   if d != GGUF or (gguf and q == gguf_type(profile.drafter))}
    head = artifact_path(profile.name)
    head = head if head.is_file() else None
    acceptance, ratio = {}, 0.1
    if profile.method is None:  # what runs then: a drafter's chain where there is one
        methods = ["draft"] if profile.drafter else ["ar"]
    elif profile.method == AUTO:
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
    draft_quants = None if profile.draft_quant == AUTO else [profile.draft_quant]
    if gguf and draft_quants and profile.drafter:  # the drafter's GGUF as stored is "none" here
        draft_quants.append(gguf_type(profile.drafter))
    return choose(target, drafter, quant=profile.quant,
                  dtypes=None if profile.dtype == AUTO else [profile.dtype, GGUF] if gguf else [profile.dtype],
                  draft_quants=draft_quants, logits_only=(GGUF,),
                  methods=methods, new_tokens=min(profile.max_new_tokens, 256),
                  acceptance=acceptance, mtp_token_ratio=ratio,
                  measured=last_bench.load(profile.name, head))


def training_dtype(profile: Profile, report: MachineReport, batch: int, new_tokens: int = 256,
                   prompt_tokens: int = 256) -> tuple[str, dict[str, float]]:
    """`mtp train`'s dtype under `dtype: auto`: where a batch of answers (its prompts read, then
    `new_tokens` decoding steps of `batch` rows, the bulk of a plan besides training itself) is
    predicted fastest on the report's costs; with each dtype's predicted seconds. Not generate's
    choice: that one weighs one-row passes and short verifications, and on a CPU without native
    bfloat16 those can favour bfloat16 while its batched passes and prompt reading run several
    times slower than float32's (docs/measurements/README.md, 2026-12-08)."""
    costs = report.costs(read_config(profile.target))
    seconds = {d: batch * prompt_tokens / c.prefill_tps + new_tokens * c.t(batch)
               for (d, q), c in costs.items() if q == profile.quant and d != GGUF}
    if not seconds:
        raise ValueError("nothing measured to choose from")
    return min(seconds, key=seconds.get), seconds


def gguf_type(source: str) -> str:
    """A GGUF source's weight type, from its file's header ("q4_k_m")."""
    from specscope.core.llamacpp_load import gguf_file

    return gguf_format(gguf_file(source)).split("/", 1)[1]


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
    if profile.backend == AUTO and not llamacpp_open(profile):
        profile = replace(profile, backend="torch")
    if profile.backend == "llama.cpp":  # the GGUF's own weights: no dtype or drafter weights
        profile = replace(profile, dtype=GGUF if profile.dtype == AUTO else profile.dtype,
                          draft_quant="none" if profile.draft_quant == AUTO else profile.draft_quant,
                          draft_window=0)
        if profile.method != AUTO or not llamacpp_open(profile):
            return replace(profile, method=None if profile.method == AUTO else profile.method), None
        # method auto on llama.cpp: chosen from llama.cpp's own measured passes, as on torch
    if not is_auto(profile):
        return profile, None
    report = machine_report(profile, progress)
    if report is None:
        profile = replace(profile, backend="torch" if profile.backend == AUTO else profile.backend)
        d, q = _fallback(profile)
        return replace(profile, dtype=d if profile.dtype == AUTO else profile.dtype,
                       draft_quant=q if profile.draft_quant == AUTO else profile.draft_quant,
                       method=None if profile.method == AUTO else profile.method), None
    choice = choose_for(profile, report)
    method_auto = profile.method == AUTO
    if profile.backend == AUTO:  # llama.cpp was open: the choice says which backend
        if choice.dtype != GGUF:
            profile = replace(profile, backend="torch")
        else:
            return replace(profile, backend="llama.cpp", dtype=GGUF, draft_quant="none",
                           draft_window=0,
                           method=choice.method if method_auto else profile.method), choice
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
    return {"backend": "llama.cpp" if choice.dtype == GGUF else "torch",
            "dtype": choice.dtype, "draft_quant": choice.draft_quant, "method": choice.method,
            "draft_len": choice.draft_len, "predicted_tokens_per_s": round(p.tokens_per_s, 3),
            "predicted_speedup": round(p.speedup, 3), "reason": choice.reason}


def choice_line(choice: Choice | None) -> str:
    return "" if choice is None else f"auto: {choice.reason}"
