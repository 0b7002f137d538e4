"""What the decoding loop yields: small frozen records of plain values (no tensors).

A run yields `Started`, then per step a `Drafted` and a `Verified`, then `Finished`.
Every front end (CLI, TUI, bench, JSON) is a consumer of this stream.

A long input (more than one prefill chunk to read, see core/lm.py) also yields `Prefilling`
progress: the target's before `Started`, a model drafter's before the `Drafted` of the step that
reads it (its first step, or one after a long gap). Each series starts at the tokens already
cached and ends with done == total.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Started:
    prompt_tokens: int
    method: str
    prefill_s: float
    kind: str = "started"


@dataclass(frozen=True)
class Prefilling:
    """Progress of reading a long input into a model's KV cache, between two chunked passes."""

    model: str  # "target" or "draft"
    done: int  # tokens of the context its cache covers now
    total: int  # tokens it is reading up to
    kind: str = "prefilling"


@dataclass(frozen=True)
class Overlap:
    """Drafting ahead while the target verified the step before (drafters/overlap.py), as the
    drafter's worker saw it; on the Drafted event of the step that followed that verification."""

    predrafted: int  # tokens drafted ahead during the previous step's verification
    reused: int  # of this proposal's tokens, those taken from a branch drafted ahead
    # the branch the verdict matched: "main" (all accepted and the bonus guessed), "hedge" (a
    # branch from the target's correction), "" (none matched: drafted again), "first" (the first
    # step of a run: nothing drafted ahead yet)
    branch: str
    hedges: int  # branches drafted ahead from guessed corrections (not the main one)
    hedge_missed: bool  # a hedge was ready at the position the verdict cut, with another token
    spec_s: float  # the worker's seconds drafting ahead during the previous verification
    draft_idle_s: float  # the worker's seconds with nothing to do since its previous answer
    target_wait_s: float  # the engine's seconds waiting for this proposal
    kind: str = "overlap"


@dataclass(frozen=True)
class Drafted:
    """The drafter's proposal for one step.

    A chain is a tree whose every node's parent is the previous one: `parents[i]` is the index of
    node i's parent in `tokens`, or -1 for children of the current context.
    """

    step: int
    context_len: int  # committed tokens (prompt + generated) before this step
    method: str
    draft_len: int  # the length asked for this step
    tokens: tuple[int, ...]
    texts: tuple[str, ...]
    q: tuple[float | None, ...]  # drafter probability of each proposed token
    parents: tuple[int, ...]
    draft_s: float  # the drafter's seconds this step, prefill_s included
    kind: str = "drafted"
    # Block-refining drafters (jacobi): the block as first guessed, then after each parallel
    # pass (len - 1 passes), ids and texts; empty for the other drafters.
    refinement: tuple[tuple[int, ...], ...] = ()
    refinement_texts: tuple[tuple[str, ...], ...] = ()
    # seconds of draft_s spent reading a long context first (its Prefilling series); a gap of
    # one chunk or less is read by the draft pass itself and counts as drafting
    prefill_s: float = 0.0
    overlap: Overlap | None = None  # drafted by a worker with --overlap (None: serial)


@dataclass(frozen=True)
class Verified:
    """The target's verdict on the step's proposal and what the step emits."""

    step: int
    p: tuple[float, ...]  # target probability of each proposed token (shaped like sampling)
    accepted: tuple[bool, ...]  # per proposed node: on the accepted path, and emitted
    n_accepted: int  # accepted draft tokens emitted this step
    first_rejected: int | None  # index into the proposal of the first rejected node
    token: int  # target-chosen token (correction or bonus)
    token_text: str
    bonus: bool  # True when every proposed token was accepted
    emitted: tuple[int, ...]  # the tokens this step adds (accepted + target's), cut at EOS/max
    pieces: tuple[str, ...]  # the text each emitted token adds
    verify_s: float
    draft_s: float
    # per proposed node: accepted by the target but not emitted, because the answer ended before
    # it (EOS, a stop string, max new tokens); and whether the target's own token was emitted
    dropped: tuple[bool, ...] = ()
    token_emitted: bool = True
    # bytes held by the KV caches after the step: the target's, and the drafter's own (0 when it
    # has none, or drafts through the target's)
    kv_target_bytes: int = 0
    kv_draft_bytes: int = 0
    # a served target (remote/): requests made, and the server's own compute of verify_s where
    # it reports it (the rest of verify_s is round trips: transport, JSON, queueing)
    requests: int = 0
    server_s: float | None = None
    kind: str = "verified"


@dataclass(frozen=True)
class Summary:
    token_ids: tuple[int, ...]
    text: str
    steps: int
    drafted: int
    accepted: int
    tau: float
    acceptance_rate: float
    per_position: tuple[float, ...]  # acceptance rate of the i-th draft position
    tokens_per_s: float
    draft_s: float
    verify_s: float
    prefill_s: float
    wall_s: float
    mbsu: float
    param_ratio: float
    new_tokens: int
    stop_reason: str  # "eos", "max_new_tokens", "stop_string", "interrupted"
    draft_prefill_s: float = 0.0  # of draft_s: the drafter reading long contexts (Drafted.prefill_s)
    kv_target_bytes: int = 0  # the most the target's KV cache held after a step
    kv_draft_bytes: int = 0  # the most the drafter's own KV cache held after a step
    requests: int = 0  # a served target: requests made, and the server's compute of verify_s
    server_s: float | None = None  # (None: local, or a server that does not report it)
    # drafting ahead (--overlap; all 0 for serial runs): tokens drafted ahead, reused, thrown
    # away; steps whose proposal came from the main branch or a hedge; hedges drafted, and
    # verdicts that cut where a hedge was ready but with another token; each side's idle time
    overlapped: bool = False
    predrafted: int = 0
    reused: int = 0
    discarded: int = 0
    main_hits: int = 0
    hedge_hits: int = 0
    hedge_misses: int = 0
    hedges: int = 0
    target_idle_s: float = 0.0
    draft_idle_s: float = 0.0
    spec_s: float = 0.0


@dataclass(frozen=True)
class Finished:
    summary: Summary
    kind: str = "finished"


Event = Prefilling | Started | Drafted | Verified | Finished


def event_to_dict(event: Event) -> dict:
    if isinstance(event, Finished):
        return {"kind": "finished", **asdict(event.summary)}
    return asdict(event)
