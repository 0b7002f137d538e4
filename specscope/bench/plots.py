"""PNG plots of a benchmark (matplotlib, Agg backend), each readable without results.json:
its title says what was measured, its subtitle on what (profile, dtype, device, settings).

  speedup_by_category.png     speedup over `ar` per category group, one bar per configuration
  acceptance_by_position.png  how often the i-th draft token is accepted, one curve per config
  speedup_vs_draft_len.png    overall speedup against draft length, one line per method
  speedup_vs_context.png      speedup against context length (a category's mean prompt tokens),
  cost_vs_context.png         and draft seconds per token / verify seconds per pass against it;
                              both when the categories differ in length (e.g. --prompts long)
"""
from __future__ import annotations

from pathlib import Path

from specscope.outputs import atomic_write
from specscope.bench.grid import BASELINE, OVERALL, is_auto

MIN_SAMPLES = 5


def subtitle(meta: dict) -> str:
    s = meta.get("settings", {})
    return (f"{meta.get('profile', '?')} ({meta.get('dtype', '?')}, {meta.get('device', '?')}); "
            f"temperature {s.get('temperature', '?')}, max {s.get('max_new_tokens', '?')} new tokens, "
            f"{meta.get('prompts', '?')} prompts; baseline: specscope's plain loop (ar)")


def _figure(title: str, meta: dict, width: float = 9.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, 5.0), layout="constrained")
    fig.suptitle(title, fontsize=12, fontweight="bold")
    ax.set_title(subtitle(meta), fontsize=8, color="0.35")
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def speedup_by_category(rows: list[dict], meta: dict, path: Path) -> None:
    configs = [c for c in dict.fromkeys(r["config"] for r in rows) if c != BASELINE]
    groups = [g for g in dict.fromkeys(r["category"] for r in rows) if g != OVERALL] + [OVERALL]
    value = {(r["config"], r["category"]): r["speedup"] for r in rows}
    fig, ax = _figure("Speedup over plain decoding, per category", meta,
                      width=min(16.0, max(8.0, 0.25 * len(groups) * len(configs) + 5)))
    width = 0.8 / max(1, len(configs))
    for i, config in enumerate(configs):
        xs = [g + (i - (len(configs) - 1) / 2) * width for g in range(len(groups))]
        ys = [value.get((config, g)) or 0.0 for g in groups]
        bars = ax.bar(xs, ys, width, label=config)
        if len(configs) * len(groups) <= 40:
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1, label="baseline (ar) = 1.0")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("speedup (mean tok/s / baseline mean tok/s)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def acceptance_by_position(rows: list[dict], meta: dict, path: Path) -> None:
    """Positions seen in fewer than MIN_SAMPLES steps are left out: one lucky step is not a rate."""
    fig, ax = _figure("Acceptance by draft position (all prompts)", meta)
    drawn = 0
    for r in rows:
        if r["category"] != OVERALL or not r["per_position"]:
            continue
        counts = r.get("per_position_drafted") or [MIN_SAMPLES] * len(r["per_position"])
        points = [(i + 1, a) for i, (a, n) in enumerate(zip(r["per_position"], counts))
                  if n >= MIN_SAMPLES]
        if not points:
            continue
        hf = r.get("kind") == "hf"  # dashed, hollow: transformers' rows often overlap ours exactly
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=r["config"],
                linestyle="--" if hf else "-", markerfacecolor="none" if hf else None,
                markersize=8 if hf else 5)
        drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, "no draft tokens in this run", ha="center", transform=ax.transAxes)
    ax.set_xlabel(f"draft position i (1 = first draft token; positions with < {MIN_SAMPLES} "
                  "samples left out)")
    ax.set_ylabel("share of steps whose i-th draft token was accepted")
    ax.set_ylim(0, 1.05)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if drawn:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def speedup_vs_draft_len(rows: list[dict], meta: dict, path: Path) -> None:
    fig, ax = _figure("Overall speedup against draft length", meta)
    series: dict[str, list[tuple[int, float]]] = {}
    auto: list[tuple[str, float]] = []
    for r in rows:
        if r["category"] != OVERALL or r["speedup"] is None or r["draft_len"] is None:
            continue
        label = r["method"] + (f" v={r['vocab_top_k']}" if r["vocab_top_k"] is not None else "")
        if is_auto(r["draft_len"]):
            auto.append((f"{label} k={r['draft_len']}", r["speedup"]))
        else:
            series.setdefault(label, []).append((int(r["draft_len"]), r["speedup"]))
    for label, points in series.items():
        points.sort()
        ax.plot([k for k, _ in points], [s for _, s in points], marker="o", label=label)
    for label, s in auto:
        ax.axhline(s, linestyle=":", linewidth=1.2, label=f"{label} ({s:.2f}x)", color="0.2")
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1, label="baseline (ar) = 1.0")
    ax.set_xlabel("draft length k (draft tokens per step)")
    ax.set_ylabel("speedup over plain decoding")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def by_context(rows: list[dict], key: str) -> dict[str, list[tuple[float, float]]]:
    """Per configuration, (context tokens, rows[key]) of each category, by context length."""
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r["category"] != OVERALL and r.get("context_tokens") and r.get(key) is not None:
            series.setdefault(r["config"], []).append((r["context_tokens"], r[key]))
    return {config: sorted(points) for config, points in series.items()}


def _context_axis(ax) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context length (mean prompt tokens of a category; log scale)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def speedup_vs_context(rows: list[dict], meta: dict, path: Path) -> None:
    fig, ax = _figure("Speedup against context length", meta)
    for config, points in by_context(rows, "speedup").items():
        if config != BASELINE:
            ax.plot([c for c, _ in points], [s for _, s in points], marker="o", label=config)
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1, label="baseline (ar) = 1.0")
    ax.set_ylabel("speedup over plain decoding")
    _context_axis(ax)
    _save(fig, path)


def cost_vs_context(rows: list[dict], meta: dict, path: Path) -> None:
    """Solid: draft ms per drafted token (the drafter's reading of a long context left out);
    dashed: verify ms per target pass, which for `ar` is a plain decoding step."""
    fig, ax = _figure("Per-token cost against context length", meta)
    colours = {}
    for config, points in by_context(rows, "t_verify").items():
        line, = ax.plot([c for c, _ in points], [t * 1e3 for _, t in points], marker="s",
                        linestyle="--", label=f"{config}: verify pass")
        colours[config] = line.get_color()
    for config, points in by_context(rows, "t_draft_token").items():
        ax.plot([c for c, _ in points], [t * 1e3 for _, t in points], marker="o",
                color=colours.get(config), label=f"{config}: draft token")
    ax.set_ylabel("milliseconds (draft: per drafted token; verify: per target pass)")
    ax.set_ylim(bottom=0)
    _context_axis(ax)
    _save(fig, path)


PLOTS = {"speedup_by_category.png": speedup_by_category,
         "acceptance_by_position.png": acceptance_by_position,
         "speedup_vs_draft_len.png": speedup_vs_draft_len}
CONTEXT_PLOTS = {"speedup_vs_context.png": speedup_vs_context,
                 "cost_vs_context.png": cost_vs_context}


def spans_contexts(rows: list[dict]) -> bool:
    """Categories of clearly different lengths (the longest at least twice the shortest)."""
    lengths = [r["context_tokens"] for r in rows
               if r["category"] != OVERALL and r.get("context_tokens")]
    return len(lengths) > 1 and max(lengths) >= 2 * min(lengths)


def write_plots(out: Path, rows: list[dict], meta: dict) -> list[Path]:
    plots = {**PLOTS, **(CONTEXT_PLOTS if spans_contexts(rows) else {})}
    for name in CONTEXT_PLOTS.keys() - plots.keys():  # an earlier result's, in the same folder
        (Path(out) / name).unlink(missing_ok=True)
    paths = []
    for name, plot in plots.items():
        plot(rows, meta, Path(out) / name)
        paths.append(Path(out) / name)
    return paths
