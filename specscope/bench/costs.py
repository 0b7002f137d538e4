"""The cost table: why a configuration wins or loses on this machine, from the measured runs.

Per configuration, pooled over its runs (seconds are the loop's own timings, prefill apart):
  t_target       a target pass of one token: the baseline's (`ar`) verify seconds per step
  t_verify       this configuration's verify seconds per step, over tokens_per_verify tokens
                 (the draft + the target's own token): what a (k+1)-token pass costs
  t_draft_token  draft seconds per drafted token, and draft_ratio = t_draft_token / t_target
                 (the drafter's reading of a long context is prefill, like the target's)
  predicted      the cost model's speedup over the baseline, tau * t_target /
                 (t_draft_step + t_verify): what the step timings promise
  measured       tokens per second over the baseline's, on the wall clock (prefill, Python
                 overhead and everything else included); the gap to `predicted` is overhead
  bandwidth      the target's weight bytes read per pass / t_target, next to the machine's
                 memory bandwidth measured by a large copy (meta["memory_gbs"])
  verify curve   the backend's pass over 1, 2, 4, 8, 16 tokens in 1-token passes, measured on
                 the loaded target before the runs (meta["verify_curve"]; the table's caption)
A served target (remote/) adds, where the server reports its own compute:
  requests       scoring requests per step
  server_share   the server's own compute / verify seconds
  t_round_trip   (verify seconds - the server's compute) per request: transport, JSON, queueing
"""
from __future__ import annotations

from specscope.bench.grid import BASELINE, OVERALL


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def cost_rows(records: list[dict], rows: list[dict], target_bytes: int | None = None) -> list[dict]:
    """One row per configuration; `rows` are report.aggregate's (for the measured speedup)."""
    base = [r for r in records if r["config"] == BASELINE and r.get("verify_s") is not None]
    t_target = _ratio(sum(r["verify_s"] for r in base), sum(r["steps"] for r in base))
    measured = {r["config"]: r["speedup"] for r in rows if r["category"] == OVERALL}
    out = []
    for config in dict.fromkeys(r["config"] for r in records):
        runs = [r for r in records if r["config"] == config]
        if any(r.get("verify_s") is None or r.get("drafted") is None for r in runs):
            continue  # transformers' rows: their step timings are not observable
        steps = sum(r["steps"] for r in runs)
        drafted = sum(r["drafted"] for r in runs)
        read_s = sum(r.get("draft_prefill_s") or 0.0 for r in runs)  # the drafter's prefill
        draft_s = sum(r["draft_s"] for r in runs) - read_s
        verify_s = sum(r["verify_s"] for r in runs)
        tau = _ratio(sum(r["new_tokens"] for r in runs), steps)
        t_draft_token = _ratio(draft_s, drafted)
        step_s = _ratio(draft_s + verify_s, steps)
        wall = sum(r["wall_s"] for r in runs)
        loop = sum(r["draft_s"] + r["verify_s"] + (r.get("prefill_s") or 0.0) for r in runs)
        out.append({
            "config": config,
            "t_target": t_target,
            "tokens_per_verify": _ratio(drafted + steps, steps),
            "t_verify": _ratio(verify_s, steps),
            "verify_ratio": _ratio(_ratio(verify_s, steps) or 0.0, t_target or 0.0),
            "t_draft_token": t_draft_token,
            "draft_ratio": _ratio(t_draft_token, t_target) if t_draft_token is not None and t_target else None,
            "predicted": tau * t_target / step_s if tau and t_target and step_s else None,
            "measured": measured.get(config),
            "prefill_share": _ratio(sum(r.get("prefill_s") or 0.0 for r in runs) + read_s, wall),
            "overhead_share": _ratio(wall - loop, wall),
            "target_gbs": target_bytes / t_target / 1e9 if target_bytes and t_target else None,
            **remote_costs(runs, steps, verify_s),
        })
    return out


def remote_costs(runs: list[dict], steps: int, verify_s: float) -> dict:
    requests = sum(r.get("requests") or 0 for r in runs)
    served = [r["server_s"] for r in runs if r.get("server_s") is not None]
    if not requests:
        return {}
    server_s = sum(served) if len(served) == len(runs) else None
    return {"requests_per_step": _ratio(requests, steps),
            "server_share": _ratio(server_s, verify_s) if server_s is not None else None,
            "t_round_trip": (verify_s - server_s) / requests if server_s is not None else None}


def verify_curve(session, reps: int = 3) -> dict | None:
    """The target's pass over 1, 2, 4, 8, 16 tokens on the backend that runs it, measured on the
    loaded model (core/machine.py's measure_lm, the mechanism `doctor` and auto use): seconds,
    and in units of a 1-token pass, which decides whether verification can pay. None for a
    served target (its passes are the server's)."""
    from specscope.core.machine import PASS_ROWS, measure_lm

    target, prof = session.target, session.profile
    if prof.target_url or not hasattr(target, "prefill"):
        return None
    costs = measure_lm(target, PASS_ROWS, reps)
    quant = "" if prof.quant == "none" else f" {prof.quant}"
    return {"backend": prof.backend,
            "format": f"{prof.quant}" if prof.backend == "llama.cpp" else f"{prof.dtype}{quant}",
            "pass_s": {str(r): round(t, 6) for r, t in costs.passes.items()},
            "passes": {str(r): round(x, 3) for r, x in costs.curve().items()},
            "prompt_tokens_per_s": round(costs.prefill_tps, 1)}


def curve_line(curve: dict | None) -> str:
    """'verify-cost curve, llama.cpp q4_k_m: a pass over 1, 2, 4, 8, 16 tokens costs 1.00, 1.90,
    ... one-token passes (one: 52 ms)'; '' without a curve."""
    if not curve:
        return ""
    rows = sorted(curve["passes"], key=int)
    ratios = ", ".join(f"{curve['passes'][r]:.2f}" for r in rows)
    return (f"verify-cost curve, {curve['backend']} {curve['format']}: a pass over "
            f"{', '.join(rows)} tokens costs {ratios} one-token passes (one: "
            f"{1000 * curve['pass_s'][rows[0]]:.3g} ms)")


def render_costs(costs: list[dict], memory_gbs: float | None = None, curve: dict | None = None):
    from rich import box
    from rich.table import Table

    def f(v, spec, suffix=""):
        return "-" if v is None else f"{v:{spec}}{suffix}"

    note = f"; machine memory bandwidth {memory_gbs:.1f} GB/s" if memory_gbs else ""
    table = Table(title="costs: why it wins or loses here (seconds per pass; ratios to a 1-token "
                  f"target pass{note})", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("configuration", "target pass", "verify (tokens)", "verify/target",
                 "draft token", "draft/target", "predicted", "measured", "prefill", "overhead",
                 "target GB/s"):
        table.add_column(name, justify="left" if name == "configuration" else "right", no_wrap=True)
    for c in costs:
        table.add_row(c["config"], f(c["t_target"], ".3f"),
                      f"{f(c['t_verify'], '.3f')} ({f(c['tokens_per_verify'], '.1f')})",
                      f(c["verify_ratio"], ".2f"), f(c["t_draft_token"], ".3f"),
                      f(c["draft_ratio"], ".2f"), f(c["predicted"], ".2f", "x"),
                      f(c["measured"], ".2f", "x"), f(c["prefill_share"], ".0%"),
                      f(c["overhead_share"], ".0%"), f(c["target_gbs"], ".1f"))
    captions = [curve_line(curve)] if curve else []
    served = [c for c in costs if c.get("requests_per_step")]
    if served:  # a served target: what a step's requests cost beyond the server's compute
        captions.append("served target: " + "; ".join(
            f"{c['config']} {c['requests_per_step']:.1f} requests a step, server compute "
            f"{f(c['server_share'], '.0%')} of verify, {f(c['t_round_trip'] and 1000 * c['t_round_trip'], '.1f')} ms "
            "round trip a request" for c in served))
    if captions:
        table.caption = "\n".join(captions)
        table.caption_justify = "left"
    return table


def weight_bytes(lm) -> int | None:
    """Bytes of weights one decoding pass reads (embedding lookup excluded)."""
    if hasattr(lm, "weight_bytes"):  # a GGUF (core/llamacpp.py): its tensors as stored
        return lm.weight_bytes()
    if not hasattr(lm, "embed"):
        return None  # a served target: its weights are the server's
    per = lm.embed.weight.element_size()  # the model's dtype (the head may be quantized or packed)
    return lm.read_params() * per
