"""The drafter's own process (DuoDecoding's two workers): its own copy of the draft model, its
own threads and device, and drafting ahead while the target verifies (drafters/overlap.py).

Why a process and not a thread: torch's intra-op thread pool is process-wide
(`torch.set_num_threads`), so a drafter thread and a target thread in one process cannot have
1 and N-1 threads each; a process has its own pool (and its own GIL).

What crosses the pipe (a socketpair, multiprocessing's Connection framing): the worker's recipe
(WorkerSpec: the model's source, dtype, device, threads, a VocabTrim ranking as ids), token ids,
shaping and settings, and back the proposal's tokens and its q rows (numpy, only when
sampling). Never a model: the worker loads its own copy from the profile's source, with its
progress sent back. It starts with `python -m specscope.core.workers FD` and ends when the
parent says so, closes the pipe, or dies (a watchdog thread polls the parent's pid; SIGINT is
ignored, so a Ctrl-C is the parent's to handle, which then closes the pipe).

Requests (parent -> worker): ("read", seq, method, ids) answered by ("reading", seq, done,
total)... ("done", seq); ("propose", seq, method, ids, k, shaping, settings, seed, overlap)
answered by ("proposal", seq, {...}); ("settle", method, committed_ids, n_accepted, proposed) and ("reset",) and
("quit",), not answered. Any failure is answered ("error", seq, message); a failure in a
request with no answer is ("error", -1, message), raised at the parent's next request.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace

import torch

WATCH_S = 0.2  # the worker checks its parent this often
# several sequences where the drafter's top probability of one of its first 2 tokens is under
# 0.5: a second sequence from the runner-up, 3 tokens long
MULTI_SEQUENCES = dict(width=2, branch_below=0.5, alt_len=3, branch_depth=2)


@dataclass(frozen=True)
class WorkerSpec:
    """How the worker builds its drafter: a recipe, never a model."""

    source: str  # a model source (load_causal_lm), or "tiny" for a tiny_model built from `tiny`
    target_vocab: int
    dtype: str = "float32"
    device: str = "cpu"
    threads: int = 1
    draft_quant: str = "none"
    draft_window: int = 0
    ranking: tuple[int, ...] | None = None  # a VocabTrim ranking (token ids), and its default K
    vocab_k: int | None = None
    tiny: dict | None = None  # tests: tiny_model(**tiny) (core/tiny.py), seeded, no download
    tree: dict = field(default_factory=dict)  # TreeDrafter's shape for method 'tree'
    max_branches: int = 4  # branches drafted ahead per verification, at most
    # tests: draft every branch before taking the next request (what is drafted ahead then
    # does not depend on timing); otherwise drafting ahead stops when the verdict arrives
    finish_branches: bool = False


def build_drafter_lm(spec: WorkerSpec, progress=None):
    from specscope.core.models import load_causal_lm
    from specscope.core.window import WindowedLM

    if spec.source == "tiny":
        from specscope.core.tiny import tiny_model

        model = tiny_model(**spec.tiny).to(dtype=getattr(torch, spec.dtype), device=spec.device)
    else:
        model = load_causal_lm(spec.source, spec.dtype, spec.device, progress)
    lm = WindowedLM(model, check=False, window=spec.draft_window)
    lm.quantize(spec.draft_quant, progress)
    lm.check_logits()
    return lm


def worker_seed(seed: int, prompt_len: int) -> int:
    """The worker's stream for a run: from the run's seed, but not the target's stream."""
    return (seed * 0x9E3779B97F4A7C15 + prompt_len * 0x5851F42D + 0x2545F491) % (1 << 63)


# ---- the worker process ------------------------------------------------------------------------
class _Worker:
    def __init__(self, conn, spec: WorkerSpec) -> None:
        from specscope.core.drafters.model import ModelDrafter, RankedHead
        from specscope.core.drafters.overlap import Speculator
        from specscope.core.drafters.overlap_passes import PassSpeculator

        self.conn, self.spec = conn, spec

        def progress(stage: str, done: float, total: float | None) -> None:
            conn.send(("progress", stage, done, total))

        lm = build_drafter_lm(spec, progress)
        ranked = None
        if spec.ranking is not None:
            ranked = RankedHead(lm, torch.tensor(spec.ranking), spec.vocab_k)
        self.speculators = {
            "draft": Speculator(ModelDrafter(lm, spec.target_vocab, ranked)),
            "tree": Speculator(ModelDrafter(lm, spec.target_vocab, ranked), "tree", **spec.tree),
            # DuoDecoding's multi-sequence drafting (the draft method, --overlap, --draft-len
            # auto): alternatives where the first tokens are unsure, verified as one tree
            "draft-multi": Speculator(ModelDrafter(lm, spec.target_vocab, ranked), "tree",
                                      **MULTI_SEQUENCES),
            "pool": PassSpeculator(ModelDrafter(lm, spec.target_vocab, ranked), "pool"),
            "jacobi": PassSpeculator(ModelDrafter(lm, spec.target_vocab, ranked), "jacobi"),
        }
        self.generator = torch.Generator(device=lm.device)
        self.pending = None  # (speculator, shaping, ahead): draft ahead before the next request
        self.idle_s = 0.0
        conn.send(("ready", self.speculators["draft"].model.read_params()))

    def serve(self) -> None:
        while True:
            if self.pending is not None:
                spec, shaping, ahead = self.pending
                self.pending = None
                stop = (lambda: False) if self.spec.finish_branches else self.conn.poll
                spec.speculate(shaping, self.generator, ahead, self.spec.max_branches, stop)
            t = time.perf_counter()
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                return
            self.idle_s += time.perf_counter() - t
            if msg[0] == "quit":
                return
            try:
                self.handle(msg)
            except Exception as e:  # noqa: BLE001 - every failure goes back as one line
                from specscope.core.errors import SpecScopeError

                text = str(e) if isinstance(e, SpecScopeError) else f"{type(e).__name__}: {e}"
                seq = msg[1] if len(msg) > 1 and isinstance(msg[1], int) else -1
                if seq == -1:  # a request with no answer (settle, reset): the next answer raises it
                    text = f"{msg[0]} failed: {text}"
                self.conn.send(("error", seq, text))

    def handle(self, msg) -> None:
        kind = msg[0]
        if kind == "reset":
            for s in self.speculators.values():
                s.reset()
            self.pending = None
        elif kind == "settle":
            self.speculators[msg[1]].settle(list(msg[2]), *msg[3:])
        elif kind == "read":
            _, seq, method, ids = msg
            for done, total in self.speculators[method].model.prefill(list(ids)):
                self.conn.send(("reading", seq, done, total))
            self.conn.send(("done", seq))
        elif kind == "propose":
            self.propose(*msg[1:])
        elif kind == "fail":  # tests: a request that fails inside the worker
            raise RuntimeError(msg[2])
        else:
            raise ValueError(f"unknown request {kind!r}")

    def propose(self, seq, method, ids, k, shaping, settings, seed, overlap) -> None:
        s = self.speculators[method]
        drafter = getattr(s, "drafter", None) or s.tree or s.model  # pool, jacobi / tree / draft
        drafter.configure(replace(settings, overlap=False))
        if seed is not None:  # a new run
            self.generator.manual_seed(seed)
            s.new_run()
        ids = list(ids)
        proposal = s.propose(ids, k, shaping, self.generator, overlap)
        info = None
        if proposal.overlap is not None:
            info = {**proposal.overlap.__dict__, "draft_idle_s": self.idle_s}
            info.pop("kind", None)
        self.idle_s = 0.0
        q = None if proposal.q is None else proposal.q.float().cpu().numpy()
        self.conn.send(("proposal", seq, dict(tokens=proposal.tokens, parents=proposal.parents,
                                              q_token=proposal.q_token, q=q, overlap=info,
                                              kv_bytes=s.model.kv_bytes(),
                                              read_params=s.model.read_params())))
        if overlap and k > 0:
            self.pending = (s, shaping, k)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    os._exit(0)


def main(argv: list[str]) -> None:
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it then closes us
    parent = int(argv[1])
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    conn = Connection(int(argv[0]))
    try:
        spec = conn.recv()
        torch.set_num_threads(spec.threads)
        try:
            worker = _Worker(conn, spec)
        except Exception as e:  # noqa: BLE001 - a load failure is one line for the parent
            conn.send(("error", -1, str(e) or type(e).__name__))
            return
        worker.serve()
    except (EOFError, OSError, BrokenPipeError):
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
