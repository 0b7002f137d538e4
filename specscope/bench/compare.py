"""`specscope bench --compare DIR1 DIR2`: what changed between two benchmark runs."""
from __future__ import annotations

from pathlib import Path

from specscope.bench.report import read_results, speedup_spread

META_KEYS = ["profile", "target", "drafter", "backend", "dtype", "quant", "draft_quant", "device", "machine", "cpu", "gpu", "torch",
             "transformers", "specscope", "settings", "prompt_file", "prompts"]
METRICS = [("speedup", ".2f", "x", "speedup"), ("decode_speedup", ".2f", "x", "decode"),
           ("tau", ".2f", "", "tau"),
           ("acceptance_rate", ".0%", "", "accept"), ("tokens_per_s", ".1f", "", "tok/s"),
           ("mbsu", ".2f", "", "MBSU"), ("identical_share", ".0%", "", "identical")]


def meta_differences(a: dict, b: dict) -> list[tuple[str, str, str]]:
    out = []
    for key in META_KEYS:
        if a.get(key) != b.get(key):
            out.append((key, str(a.get(key, "-")), str(b.get(key, "-"))))
    return out


def _fmt(value, spec: str, suffix: str) -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _delta(a, b, spec: str) -> str:
    if a is None or b is None:
        return ""
    if spec.endswith("%"):
        return f"{(b - a) * 100:+.0f}pt"
    return f"{(b - a) / a:+.0%}" if a else f"{b - a:+.2f}"


def compare_rows(rows_a: list[dict], rows_b: list[dict]) -> tuple[list[tuple], list[str], list[str]]:
    """(matched (key, row_a, row_b) in A's order, keys only in A, keys only in B)."""
    key = lambda r: (r["config"], r["category"])  # noqa: E731
    b_by_key = {key(r): r for r in rows_b}
    a_keys = {key(r) for r in rows_a}
    matched = [(key(r), r, b_by_key[key(r)]) for r in rows_a if key(r) in b_by_key]
    only_a = [f"{c} / {g}" for c, g in (key(r) for r in rows_a) if (c, g) not in b_by_key]
    only_b = [f"{c} / {g}" for c, g in (key(r) for r in rows_b) if (c, g) not in a_keys]
    return matched, only_a, only_b


def render_compare(dir_a: Path, dir_b: Path, console) -> None:
    from rich import box
    from rich.table import Table

    a, b = read_results(dir_a), read_results(dir_b)
    console.print(f"[bold]A[/bold] = {dir_a}   [bold]B[/bold] = {dir_b}")
    diffs = meta_differences(a.get("meta", {}), b.get("meta", {}))
    if diffs:
        meta = Table(title="setting differences", title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("", "A", "B"):
            meta.add_column(col)
        for row in diffs:
            meta.add_row(*row)
        console.print(meta)
    else:
        console.print("same settings, machine and versions")
    matched, only_a, only_b = compare_rows(a["results"], b["results"])
    table = Table(title="metrics: A -> B (change); one value where they agree; decode: prefill excluded", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("configuration", no_wrap=True)
    table.add_column("category", no_wrap=True)
    table.add_column("speedup", justify="right")
    table.add_column("spread", justify="right")  # the per-prompt speedups' range (report.py)
    for *_, header in METRICS[1:]:
        table.add_column(header, justify="right")
    last = last_shown = None
    for (config, group), ra, rb in matched:
        if last is not None and config != last:
            table.add_section()
        last_shown, last = last, config
        cells = []
        for name, spec, suffix, _ in METRICS:
            if name == "decode_speedup":  # after the speedup: its spread over prompts
                sa, sb = speedup_spread(ra), speedup_spread(rb)
                cells.append(sa if sa == sb else f"{sa} -> {sb}")
            a_text, b_text = _fmt(ra.get(name), spec, suffix), _fmt(rb.get(name), spec, suffix)
            if a_text == b_text:  # unchanged at the shown precision: show it once
                cells.append(a_text)
                continue
            change = _delta(ra.get(name), rb.get(name), spec)
            cells.append(f"{a_text} -> {b_text}" + (f" ({change})" if change else ""))
        table.add_row(config if config != last_shown else "", group, *cells, style="bold" if group == "overall" else None)
    console.print(table)
    if only_a:
        console.print("only in A: " + ", ".join(only_a))
    if only_b:
        console.print("only in B: " + ", ".join(only_b))
