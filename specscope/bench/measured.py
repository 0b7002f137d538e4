"""What one timed generation produced (ours or transformers'), and the device sync around it."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Measured:
    """What one generation produced, before it is tagged with its prompt and configuration."""

    token_ids: list[int]
    wall_s: float
    steps: int
    drafted: int | None  # None where the drafting is not observable (some hf rows)
    accepted: int | None
    pos_drafted: list[int]
    pos_accepted: list[int]
    param_ratio: float
    stop_reason: str
    prefill_s: float | None = None
    draft_s: float | None = None
    verify_s: float | None = None
    draft_prefill_s: float | None = None  # of draft_s: the drafter reading a long context
    requests: int = 0  # a served target (remote/): scoring requests, and the server's compute
    server_s: float | None = None
    server_tokens_per_s: float | None = None  # an engine reference row: the server's own generation speed
    overlap: dict | None = None  # drafting ahead (overlap_fields), None for serial runs


OVERLAP_FIELDS = ("predrafted", "reused", "discarded", "main_hits", "hedge_hits", "hedge_misses",
                  "hedges", "target_idle_s", "draft_idle_s", "spec_s")


def overlap_fields(summary) -> dict | None:
    """What drafting ahead did in a run (core/events.py Summary), for its bench record."""
    if not getattr(summary, "overlapped", False):
        return None
    return {k: getattr(summary, k) for k in OVERLAP_FIELDS}


def sync(device) -> None:
    if getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)
