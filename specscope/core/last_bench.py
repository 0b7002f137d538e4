"""The last `bench` on this machine, per profile: each method's best measured speedup over plain
decoding (overall row, our own rows), kept in the machine cache so `method: auto` can choose
from measurements rather than predictions (core/chooser.py's `measured`).

A FastMTP head's numbers belong to that head: they are kept with the head's checksum, and
dropped once another head is trained (the next bench measures the new one).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from specscope.core.files import atomic_write

HEAD_METHODS = ("mtp", "mtp-tree")


def path_for(profile_name: str) -> Path:
    from specscope.core.embedded import cache_dir
    from specscope.core.machine import machine_info

    return cache_dir() / "machine" / f"bench-{machine_info().key}-{profile_name}.json"


def head_stamp(head: Path | None) -> str | None:
    """Which head: the first 16 hex digits of its file's sha256 (None without one)."""
    if head is None or not Path(head).is_file():
        return None
    return hashlib.sha256(Path(head).read_bytes()).hexdigest()[:16]


def save(profile_name: str, dtype: str, draft_quant: str, rows: list[dict], head: Path | None) -> None:
    """Keep the overall rows' best speedup per method (a drafter's row with its weights' format)."""
    best: dict[str, float] = {}
    for r in rows:
        if r.get("category") != "overall" or r.get("kind") == "hf" or not r.get("speedup"):
            continue
        method = r["method"] if r["method"] != "draft" else f"draft:{draft_quant}"
        best[method] = max(best.get(method, 0.0), float(r["speedup"]))
    if not best:
        return
    path = path_for(profile_name)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    if data.get("head") != head_stamp(head):  # another head: its numbers do not hold
        data = {k: v for k, v in data.items() if k != "speedups"} | {
            "speedups": {d: {m: s for m, s in ms.items() if m not in HEAD_METHODS}
                         for d, ms in data.get("speedups", {}).items()}}
    speedups = data.get("speedups", {})
    speedups[dtype] = {**speedups.get(dtype, {}), **best}
    data.update(speedups=speedups, head=head_stamp(head))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1)))


def load(profile_name: str, head: Path | None) -> dict[tuple[str, str], float]:
    """(dtype, method) -> the last measured speedup; a head's methods only for the same head."""
    try:
        data = json.loads(path_for(profile_name).read_text())
    except (OSError, ValueError):
        return {}
    same_head = data.get("head") is not None and data.get("head") == head_stamp(head)
    return {(d, m): float(s) for d, ms in data.get("speedups", {}).items() for m, s in ms.items()
            if same_head or m not in HEAD_METHODS}
