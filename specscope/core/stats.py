"""Fold events into the metrics every front end shows.

tau: tokens emitted per target forward pass (counting the target's own token; plain decoding
scores 1.0). acceptance rate: accepted over drafted tokens. Per-position acceptance: of the tokens
drafted at depth d (a chain's position d; every node at that depth of a tree), the share that
was accepted (for a tree at most one node per depth is). MBSU = tau / (k * r + 1), with k the
mean number of drafted tokens per step and r the drafter/target parameter ratio.
KV memory: the bytes the target's and the drafter's caches hold after the latest step (live
displays) and the most they held (the summary).
"""
from __future__ import annotations

import time

from specscope.core.events import Drafted, Event, Started, Summary, Verified
from specscope.core.tree import depths


def byte_size(n: int) -> str:
    """'96.4 MiB', '384 KiB': KV memory as front ends show it."""
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


class Stats:
    def __init__(self, param_ratio: float = 0.0) -> None:
        self.param_ratio = param_ratio
        self.t0 = time.perf_counter()
        self.prompt_tokens = 0
        self.prefill_s = 0.0
        self.steps = 0
        self.drafted = 0
        self.accepted = 0
        self.draft_s = 0.0
        self.verify_s = 0.0
        self.draft_prefill_s = 0.0  # of draft_s: reading long contexts (Drafted.prefill_s)
        self.token_ids: list[int] = []
        self.pieces: list[str] = []
        self.pos_drafted: list[int] = []
        self.pos_accepted: list[int] = []
        self._depths: tuple[int, ...] = ()
        self.kv_target_bytes = self.kv_draft_bytes = 0  # after the latest step
        self.kv_target_peak = self.kv_draft_peak = 0
        self.requests = 0
        self.server_s: float | None = None
        self.overlap: dict[str, float] = {}  # sums of the Overlap records (drafting ahead)

    def add(self, event: Event) -> None:
        if isinstance(event, Started):
            self.prompt_tokens = event.prompt_tokens
            self.prefill_s = event.prefill_s
        elif isinstance(event, Drafted):
            self._depths = tuple(depths(event.parents))
            self.drafted += len(event.tokens)
            self.draft_prefill_s += event.prefill_s
            if event.overlap is not None:
                self._add_overlap(event.overlap)
        elif isinstance(event, Verified):
            self.steps += 1
            self.accepted += event.n_accepted
            self.draft_s += event.draft_s
            self.verify_s += event.verify_s
            self.requests += event.requests
            if event.server_s is not None:
                self.server_s = (self.server_s or 0.0) + event.server_s
            self.token_ids.extend(event.emitted)
            self.pieces.extend(event.pieces)
            self.kv_target_bytes, self.kv_draft_bytes = event.kv_target_bytes, event.kv_draft_bytes
            self.kv_target_peak = max(self.kv_target_peak, event.kv_target_bytes)
            self.kv_draft_peak = max(self.kv_draft_peak, event.kv_draft_bytes)
            max_depth = max(self._depths, default=-1) + 1
            while len(self.pos_drafted) < max_depth:
                self.pos_drafted.append(0)
                self.pos_accepted.append(0)
            for d in self._depths:
                self.pos_drafted[d] += 1
            for d in range(min(event.n_accepted, max_depth)):
                self.pos_accepted[d] += 1

    def _add_overlap(self, o) -> None:
        add = {"predrafted": o.predrafted, "reused": o.reused, "hedges": o.hedges,
               "main_hits": o.branch == "main", "hedge_hits": o.branch == "hedge",
               "hedge_misses": o.hedge_missed, "target_idle_s": o.target_wait_s,
               "draft_idle_s": o.draft_idle_s, "spec_s": o.spec_s}
        for key, value in add.items():
            self.overlap[key] = self.overlap.get(key, 0) + value

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def tau(self) -> float:
        return len(self.token_ids) / self.steps if self.steps else 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def mean_draft_len(self) -> float:
        return self.drafted / self.steps if self.steps else 0.0

    @property
    def mbsu(self) -> float:
        return self.tau / (self.mean_draft_len * self.param_ratio + 1.0) if self.steps else 0.0

    @property
    def per_position(self) -> tuple[float, ...]:
        return tuple(a / d if d else 0.0 for a, d in zip(self.pos_accepted, self.pos_drafted))

    def summary(self, stop_reason: str, wall_s: float | None = None) -> Summary:
        wall = self.wall_s if wall_s is None else wall_s
        n = len(self.token_ids)
        return Summary(
            token_ids=tuple(self.token_ids),
            text=self.text,
            steps=self.steps,
            drafted=self.drafted,
            accepted=self.accepted,
            tau=self.tau,
            acceptance_rate=self.acceptance_rate,
            per_position=self.per_position,
            tokens_per_s=n / wall if wall > 0 else 0.0,
            draft_s=self.draft_s,
            verify_s=self.verify_s,
            prefill_s=self.prefill_s,
            wall_s=wall,
            mbsu=self.mbsu,
            param_ratio=self.param_ratio,
            new_tokens=n,
            stop_reason=stop_reason,
            draft_prefill_s=self.draft_prefill_s,
            kv_target_bytes=self.kv_target_peak,
            kv_draft_bytes=self.kv_draft_peak,
            requests=self.requests,
            server_s=self.server_s,
            **self._overlap_summary(),
        )

    def _overlap_summary(self) -> dict:
        o = self.overlap
        if not o:
            return {}
        counts = {k: int(o[k]) for k in ("predrafted", "reused", "main_hits", "hedge_hits",
                                         "hedge_misses", "hedges")}
        return dict(overlapped=True, discarded=counts["predrafted"] - counts["reused"], **counts,
                    target_idle_s=o["target_idle_s"], draft_idle_s=o["draft_idle_s"],
                    spec_s=o["spec_s"])
