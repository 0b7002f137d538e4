"""From per-run records to results: aggregation, the terminal table, results.json/csv, runs.jsonl.

Definitions (per configuration, per category group, and `overall` over all prompts):
  tokens_per_s     mean over prompts of the prompt's tok/s (its new tokens over its wall time,
                   summed over repeats), as Spec-Bench computes it
  speedup          tokens_per_s of the configuration / tokens_per_s of the baseline (`ar`) on the
                   same prompts: a ratio of means, not a mean of per-prompt ratios
  tau              new tokens / target forward passes (steps), pooled over runs; plain decoding 1.0
  acceptance_rate  accepted / drafted draft tokens, pooled (None when nothing was drafted)
  per_position     for each draft position i, how often the i-th draft token was accepted, pooled
  mbsu             tau / (k * r + 1), k the pooled mean draft length, r drafter/target weights
  identical_share  share of runs whose token ids equal the baseline's for the same prompt and repeat
  context_tokens   mean prompt length in tokens (the context the runs decode after), over prompts
  t_draft_token    draft seconds per drafted token, pooled, without the drafter's reading of a
                   long context (Drafted.prefill_s): how drafting cost grows with the context
  t_verify         verify seconds per target pass, pooled (for `ar`: a plain decoding step)

Uncertainty (how far one number stands for its prompts):
  speedup_min, speedup_max   the lowest and highest per-prompt speedup (a prompt's tok/s over
                   the baseline's on it); the speedup, a ratio of means, always lies between them
  speedup_ci95     a 95% interval of the speedup over prompts: percentile bootstrap, prompts
                   resampled BOOTSTRAP times (seeded: the same runs give the same interval); None
                   for one prompt
  speedup_by_repeat   with --repeats N > 1: the speedup of each repeat alone

Decode only (the target's prefill, the same work for every method, excluded):
  decode_tokens_per_s   mean over prompts of new tokens / (wall - the target's prefill seconds);
                   None where a run does not report its prefill (transformers' rows)
  decode_speedup   decode_tokens_per_s / the baseline's, on the same prompts
  prefill_share    the target's prefill seconds / wall seconds, pooled

overlap_prompts    prompts an artifact in use was fitted or selected on (bench --allow-overlap)
"""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict

from specscope.bench.costs import cost_rows
from specscope.outputs import atomic_write_text
from specscope.bench.grid import BASELINE, OVERALL

KEYS = ["config", "kind", "backend", "method", "draft_len", "vocab_top_k", "category", "context_tokens",
        "speedup", "speedup_min", "speedup_max", "speedup_ci95_low", "speedup_ci95_high",
        "decode_speedup", "decode_tokens_per_s", "prefill_share", "overlap_prompts", "tau",
        "acceptance_rate", "tokens_per_s", "baseline_tokens_per_s", "mbsu", "identical_share",
        "mean_draft_len", "t_draft_token", "t_verify", "prompts", "runs", "new_tokens", "wall_s",
        "per_position", "per_position_drafted", "own_speedup", "own_decode_speedup",
        "server_tokens_per_s", "drafting", "target_idle_share", "draft_idle_share", "predrafted",
        "reused", "discarded", "main_hits", "hedge_hits", "hedge_misses"]


BOOTSTRAP = 2000


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _per_prompt_tps(records: list[dict], decode: bool = False) -> dict[str, float] | None:
    """Each prompt's tok/s, repeats summed; decode=True: without the target's prefill seconds
    (None when a run does not report them)."""
    tokens: dict[str, int] = defaultdict(int)
    wall: dict[str, float] = defaultdict(float)
    for r in records:
        seconds = r["wall_s"]
        if decode:
            if r.get("prefill_s") is None:
                return None
            seconds -= r["prefill_s"]
        tokens[r["prompt_id"]] += r["new_tokens"]
        wall[r["prompt_id"]] += seconds
    return {p: tokens[p] / wall[p] if wall[p] > 0 else 0.0 for p in tokens}


def _ratio(tps: dict[str, float] | None, base: dict[str, float] | None) -> float | None:
    if not tps or not base:
        return None
    mean, mean_base = _mean(list(tps.values())), _mean([base[p] for p in tps if p in base])
    return mean / mean_base if mean is not None and mean_base else None


def bootstrap_ci(tps: dict[str, float], base: dict[str, float], n: int = BOOTSTRAP,
                 seed: int = 0) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of mean(tps) / mean(base) over resampled prompts."""
    import numpy as np

    prompts = [p for p in tps if base.get(p)]
    if len(prompts) < 2:
        return None
    a = np.array([tps[p] for p in prompts])
    b = np.array([base[p] for p in prompts])
    idx = np.random.default_rng(seed).integers(0, len(prompts), size=(n, len(prompts)))
    ratios = a[idx].mean(axis=1) / b[idx].mean(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def summarize(records: list[dict], baseline: list[dict]) -> dict:
    """Metrics of one configuration's runs against the baseline's runs (any superset of prompts)."""
    base_ids = {(r["prompt_id"], r["repeat"]): r["token_ids"] for r in baseline}
    base_prompts = {r["prompt_id"] for r in baseline}
    records = [r for r in records if r["prompt_id"] in base_prompts]  # compare like with like
    prompts = {r["prompt_id"] for r in records}
    tps = _per_prompt_tps(records)
    base_runs = [r for r in baseline if r["prompt_id"] in prompts]
    base_tps = _per_prompt_tps(base_runs)
    mean_tps, mean_base = _mean(list(tps.values())), _mean(list(base_tps.values()))
    per_prompt = [tps[p] / base_tps[p] for p in tps if base_tps.get(p)]
    ci = bootstrap_ci(tps, base_tps)
    repeats = sorted({r["repeat"] for r in records})
    by_repeat = [_ratio(_per_prompt_tps([r for r in records if r["repeat"] == k]),
                        _per_prompt_tps([r for r in base_runs if r["repeat"] == k]))
                 for k in repeats] if len(repeats) > 1 else None
    decode_tps = _per_prompt_tps(records, decode=True)
    decode_base = _per_prompt_tps(base_runs, decode=True)
    prefill = [r.get("prefill_s") for r in records]
    steps = sum(r["steps"] for r in records)
    new = sum(r["new_tokens"] for r in records)
    known = [r for r in records if r["drafted"] is not None]
    drafted = sum(r["drafted"] for r in known)
    accepted = sum(r["accepted"] for r in known)
    tau = new / steps if steps else None
    k = drafted / sum(r["steps"] for r in known) if known and steps else None
    ratio = _mean([r["param_ratio"] for r in records])
    pos_d: list[int] = []
    pos_a: list[int] = []
    for r in records:
        for i, (d, a) in enumerate(zip(r["pos_drafted"], r["pos_accepted"])):
            if i == len(pos_d):
                pos_d.append(0)
                pos_a.append(0)
            pos_d[i] += d
            pos_a[i] += a
    pairs = [(r["token_ids"], base_ids[(r["prompt_id"], r["repeat"])]) for r in records
             if (r["prompt_id"], r["repeat"]) in base_ids]
    contexts = {r["prompt_id"]: r.get("prompt_tokens") for r in records}
    timed = [r for r in known if r.get("draft_s") is not None and r.get("verify_s") is not None]
    timed_drafted = sum(r["drafted"] for r in timed)
    timed_steps = sum(r["steps"] for r in timed)
    return {
        "context_tokens": _mean([c for c in contexts.values() if c is not None]),
        "speedup": mean_tps / mean_base if mean_tps is not None and mean_base else None,
        "speedup_min": min(per_prompt) if per_prompt else None,
        "speedup_max": max(per_prompt) if per_prompt else None,
        "speedup_ci95_low": ci[0] if ci else None,
        "speedup_ci95_high": ci[1] if ci else None,
        "speedup_by_repeat": by_repeat,
        "decode_tokens_per_s": _mean(list(decode_tps.values())) if decode_tps else None,
        "decode_speedup": _ratio(decode_tps, decode_base),
        "prefill_share": sum(prefill) / sum(r["wall_s"] for r in records)
        if None not in prefill and sum(r["wall_s"] for r in records) > 0 else None,
        "overlap_prompts": len({r["prompt_id"] for r in records if r.get("overlap")}),
        "tau": tau,
        "acceptance_rate": accepted / drafted if drafted else None,
        "tokens_per_s": mean_tps,
        "baseline_tokens_per_s": mean_base,
        "mbsu": tau / (k * ratio + 1.0) if tau is not None and k is not None and ratio is not None
        else None,
        "identical_share": _mean([float(list(a) == list(b)) for a, b in pairs]),
        "mean_draft_len": k,
        "t_draft_token": sum(r["draft_s"] - (r.get("draft_prefill_s") or 0.0) for r in timed)
        / timed_drafted if timed_drafted else None,
        "t_verify": sum(r["verify_s"] for r in timed) / timed_steps if timed_steps else None,
        "prompts": len(prompts),
        "runs": len(records),
        "new_tokens": new,
        "wall_s": sum(r["wall_s"] for r in records),
        "per_position": [a / d for a, d in zip(pos_a, pos_d)],
        "per_position_drafted": pos_d,  # how many steps had an i-th draft token
        **idle_and_rollback(records),
    }


def idle_and_rollback(records: list[dict]) -> dict:
    """Each side's idle share of the wall time, and what drafting ahead drafted, reused and threw
    away (sums). Serial runs: the target idles while the drafter drafts (draft_s) and the
    drafter while the target verifies (verify_s); overlapped runs: as the worker measured."""
    wall = sum(r["wall_s"] for r in records)
    ahead = [r for r in records if r.get("predrafted") is not None]
    if not wall or any(r.get("draft_s") is None for r in records):
        return {}
    if not ahead:
        return {"target_idle_share": sum(r["draft_s"] for r in records) / wall,
                "draft_idle_share": sum(r["verify_s"] for r in records) / wall}
    out = {k: sum(r[k] for r in ahead) for k in ("predrafted", "reused", "discarded", "main_hits",
                                                  "hedge_hits", "hedge_misses")}
    return {"target_idle_share": sum(r["target_idle_s"] for r in ahead) / wall,
            "draft_idle_share": sum(r["draft_idle_s"] for r in ahead) / wall, **out}


def aggregate(records: list[dict], baseline: str = BASELINE) -> list[dict]:
    """One row per (configuration, category group), then one `overall` row per configuration."""
    base = [r for r in records if r["config"] == baseline]
    configs = list(dict.fromkeys(r["config"] for r in records))
    groups = list(dict.fromkeys(r["group"] for r in records))
    rows = []
    for config in configs:
        runs = [r for r in records if r["config"] == config]
        first = runs[0]
        ident = {k: first[k] for k in ("config", "kind", "method", "draft_len", "vocab_top_k")}
        ident["backend"] = first.get("backend")  # what ran the models (older runs: not recorded)
        ident["drafting"] = first.get("drafting", "serial")
        for group in groups + [OVERALL]:
            sel = runs if group == OVERALL else [r for r in runs if r["group"] == group]
            base_sel = base if group == OVERALL else [r for r in base if r["group"] == group]
            if sel and base_sel:
                rows.append({**ident, "category": group, **summarize(sel, base_sel)})
                served = [r["server_tokens_per_s"] for r in sel if r.get("server_tokens_per_s")]
                if served:  # an engine's own generation speed, without its prompt reading
                    rows[-1]["server_tokens_per_s"] = sum(served) / len(served)
    from specscope.bench.engine_ref import add_own_speedups

    add_own_speedups(rows)
    return rows


# -- terminal ------------------------------------------------------------------------------------

def _fmt(value, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def render_table(rows: list[dict], title: str = ""):
    from rich import box
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("configuration", no_wrap=True)
    table.add_column("category", no_wrap=True)
    table.add_column("context", justify="right")
    for name in ("speedup", "min-max", "decode", "tau", "accept", "tok/s", "decode tok/s", "MBSU",
                 "identical", "prompts"):
        table.add_column(name, justify="right")
    last = None
    for r in rows:
        first = r["config"] != last
        if first and last is not None:
            table.add_section()
        last = r["config"]
        flagged = r.get("overlap_prompts") or 0
        table.add_row(r["config"] if first else "", r["category"],
                      _fmt(r.get("context_tokens"), ",.0f"), _fmt(r["speedup"], ".2f", "x"),
                      speedup_spread(r), _fmt(r.get("decode_speedup"), ".2f", "x"),
                      _fmt(r["tau"], ".2f"), _fmt(r["acceptance_rate"], ".0%"),
                      _fmt(r["tokens_per_s"], ".1f"), _fmt(r.get("decode_tokens_per_s"), ".1f"),
                      _fmt(r["mbsu"], ".2f"), _fmt(r["identical_share"], ".0%"),
                      str(r["prompts"]) + (f" ({flagged}!)" if flagged else ""),
                      style="bold" if r["category"] == OVERALL else None)
    notes = ["min-max: the lowest and highest per-prompt speedup (results.json: a 95% interval "
             "too); decode: tok/s without the target's prefill, and its speedup"]
    from specscope.bench.engine_ref import own_speedup_note

    if own_speedup_note(rows):
        notes.append(own_speedup_note(rows))
    for r in rows:
        if r["category"] == OVERALL and r.get("target_idle_share") is not None:
            ahead = (f"; drafted ahead {r['predrafted']}, reused {r['reused']}, discarded "
                     f"{r['discarded']}, main hits {r['main_hits']}, hedge hits {r['hedge_hits']} "
                     f"misses {r['hedge_misses']}") if r.get("predrafted") is not None else ""
            notes.append(f"{r['config']}: idle target {r['target_idle_share']:.0%}, drafter "
                         f"{r['draft_idle_share']:.0%} of the wall time{ahead}")
    if any(r.get("overlap_prompts") for r in rows):
        notes.append("(N!): N prompts an artifact in use was fitted or selected on "
                     "(--allow-overlap): these rows flatter")
    table.caption = "\n".join(notes)
    table.caption_justify = "left"
    return table


def speedup_spread(r: dict) -> str:
    """The per-prompt speedups' range; a row of one prompt says so (it has no spread)."""
    if r.get("prompts") == 1:
        return "1 prompt"
    if r.get("speedup_min") is None:
        return "-"
    return f"{r['speedup_min']:.2f}-{r['speedup_max']:.2f}"


# -- files ---------------------------------------------------------------------------------------

def results_json(meta: dict, rows: list[dict], costs: list[dict] = ()) -> str:
    return json.dumps({"meta": meta, "results": rows, "costs": list(costs)}, indent=2) + "\n"


def results_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=KEYS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**{k: "" if r.get(k) is None else r.get(k) for k in KEYS},
                         "per_position": ";".join(f"{x:.4f}" for x in r["per_position"]),
                         "per_position_drafted": ";".join(map(str, r["per_position_drafted"]))})
    return buf.getvalue()


def runs_jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def read_results(directory) -> dict:
    from pathlib import Path

    from specscope.core.errors import SpecScopeError

    path = Path(directory) / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecScopeError(f"no results.json in {directory}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise SpecScopeError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise SpecScopeError(f"{path} is not a specscope bench result")
    return data


def write_results(out, meta: dict, records: list[dict], plots: bool = True) -> list[dict]:
    """runs.jsonl, results.json, results.csv and the plots, each written atomically."""
    from pathlib import Path

    out = Path(out)
    rows = aggregate(records)
    costs = cost_rows(records, rows, meta.get("target_bytes"))
    atomic_write_text(out / "runs.jsonl", runs_jsonl(records))
    atomic_write_text(out / "results.json", results_json(meta, rows, costs))
    atomic_write_text(out / "results.csv", results_csv(rows))
    if plots and rows:
        from specscope.bench.plots import write_plots

        write_plots(out, rows, meta)
    return rows
