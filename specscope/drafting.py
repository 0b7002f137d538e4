"""The drafter in its own worker process (`--overlap`, `--draft-threads N`, `--draft-device D`):
DuoDecoding's two workers, from a profile.

    profile = with_drafting(profile, overlap=True, draft_threads=1)   # checked, loads nothing
    session = load_session(profile)      # starts the worker once (start_worker), with progress
    ... session.decoder.run(ids, controls) ...   # controls.overlap: draft ahead, or take turns
    session.close()                      # the worker is gone (also at exit, Ctrl-C, a crash)

With a worker, the model drafters that draft by context (WORKER_METHODS) go through it, serial
or overlapped per run (Controls.overlap, a key in chat); the others stay in the target's
process. On one CPU the cores are split: the drafter's worker gets N threads, the target the
rest (torch's intra-op pool is per process, so the split holds); on another device (a CUDA
target, `--draft-device cpu`) the drafter's worker takes the CPU's cores.
"""
from __future__ import annotations

import os
from dataclasses import replace

from specscope.core.errors import SpecScopeError

# the model drafters: draft and tree draft their branches ahead (drafters/overlap.py), pool and
# jacobi their main branch's passes (drafters/overlap_passes.py)
WORKER_METHODS = ("draft", "tree", "pool", "jacobi")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def with_drafting(profile, overlap: bool | None = None, draft_threads: int | None = None,
                  draft_device: str | None = None):
    """The profile with the worker options applied (None keeps the profile's), checked."""
    if overlap is None and draft_threads is None and draft_device is None:
        return profile
    profile = replace(profile, overlap=profile.overlap if overlap is None else overlap,
                      draft_threads=draft_threads if draft_threads is not None else profile.draft_threads,
                      draft_device=draft_device or profile.draft_device)
    check_drafting(profile)
    return profile


def uses_worker(profile) -> bool:
    return bool(profile.overlap or profile.draft_threads or profile.draft_device)


def check_drafting(profile, method: str | None = None) -> None:
    """What a drafter worker cannot do, refused before anything loads."""
    if not uses_worker(profile):
        return
    what = "--overlap" if profile.overlap else ("--draft-threads" if profile.draft_threads
                                                else "--draft-device")
    if not profile.drafter:
        raise SpecScopeError(f"{what} needs a drafter model; profile '{profile.name}' has none")
    if profile.backend != "torch":
        raise SpecScopeError(f"{what}: the drafter's worker runs torch models (use --backend torch)")
    if profile.target_url:
        raise SpecScopeError(f"{what}: a served target already runs apart from the drafter")
    if profile.draft_threads is not None and profile.draft_threads < 0:
        raise SpecScopeError(f"--draft-threads must be >= 1, got {profile.draft_threads}")
    if profile.draft_device:
        from specscope.core.models import resolve_device

        resolve_device(profile.draft_device)
    drafter_threads, target_threads = split_threads(profile)
    if same_device(profile) and target_threads < 1:
        raise SpecScopeError(f"--draft-threads {drafter_threads}: this machine has {cores()} "
                             f"cores and the target needs at least one (try 1..{max(1, cores() - 1)})")
    if method is not None and method not in (*WORKER_METHODS, "ar", "auto") and profile.overlap:
        raise SpecScopeError(f"--overlap drafts ahead for {', '.join(WORKER_METHODS)}; method "
                             f"'{method}' drafts in the target's process")


def same_device(profile) -> bool:
    return (profile.draft_device or profile.device) == profile.device


def split_threads(profile) -> tuple[int, int]:
    """(the drafter worker's threads, the target's threads)."""
    n = cores()
    if not same_device(profile):  # the drafter on the CPU, the target elsewhere
        return profile.draft_threads or n, n
    drafter = profile.draft_threads or max(1, n // 2)
    return drafter, n - drafter


def worker_spec(profile, target_vocab: int, vocab=None):
    from specscope.core.workers import WorkerSpec

    return WorkerSpec(profile.drafter, target_vocab, dtype=profile.dtype,
                      device=profile.draft_device or profile.device,
                      threads=split_threads(profile)[0], draft_quant=profile.draft_quant,
                      draft_window=profile.draft_window,
                      ranking=None if vocab is None else tuple(int(x) for x in vocab.ranking.tolist()),
                      vocab_k=None if vocab is None else vocab.k)


def start_worker(profile, target, vocab=None, progress=None) -> tuple[object, dict]:
    """Start the profile's drafter worker; (the worker, the factories of the drafters that go
    through it). The target's process keeps its share of the cores."""
    import torch

    from specscope.core.drafters.worker import DraftWorker, WorkerDrafter

    if same_device(profile) and profile.device == "cpu":
        torch.set_num_threads(split_threads(profile)[1])
    worker = DraftWorker(worker_spec(profile, target.vocab_size, vocab), progress)
    device = target.device
    factories = {m: (lambda m=m: WorkerDrafter(worker, m, device)) for m in WORKER_METHODS}
    return worker, factories


def drafting_label(profile) -> str:
    """'drafter worker: 1 thread + target 1, overlapped' (empty without a worker)."""
    if not uses_worker(profile):
        return ""
    d, t = split_threads(profile)
    where = (f"{d} thread{'s' * (d != 1)} + target {t}" if same_device(profile)
             else f"{profile.draft_device} + target {profile.device}")
    return f"drafter worker: {where}" + (", overlapped" if profile.overlap else ", serial")
