"""The target's side of the drafter worker (core/workers.py): the process handle, and the
drafter the engine sees (`WorkerDrafter`, the one Drafter interface of base.py).

    worker = DraftWorker(spec, progress)        # starts the process once per session
    drafter = WorkerDrafter(worker, "draft")    # or "tree"; any number share one worker
    ... engine.run(...) ...                     # propose: one request; feedback: the verdict
    worker.close()                              # also at exit, and when the object is dropped

With `DraftSettings.overlap` the worker drafts ahead between the proposal and the verdict
(drafters/overlap.py); without it, it drafts only when asked (serial, on its own threads).
"""
from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
import weakref

import torch

from specscope.core.drafters.base import DrafterBase, Proposal
from specscope.core.errors import SpecScopeError
from specscope.core.events import Overlap
from specscope.core.workers import WorkerSpec, worker_seed

CLOSE_WAIT_S = 5.0


def _stop(proc: subprocess.Popen, conn) -> None:
    """End the worker: ask, then close the pipe, then kill (at exit and when dropped)."""
    if proc.poll() is None:
        try:
            conn.send(("quit",))
        except (OSError, ValueError):
            pass
    try:
        conn.close()
    except OSError:
        pass
    try:
        proc.wait(CLOSE_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class DraftWorker:
    """The drafter's process: started at construction (the load's progress goes to `progress`,
    a core/embedded.py Progress), reused for every answer, gone at close()."""

    def __init__(self, spec: WorkerSpec, progress=None) -> None:
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        env = dict(os.environ, OMP_NUM_THREADS=str(spec.threads), MKL_NUM_THREADS=str(spec.threads),
                   TOKENIZERS_PARALLELISM="false")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "specscope.core.workers", str(theirs.fileno()), str(os.getpid())],
            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.spec = spec
        self.seq = 0
        self._finalizer = weakref.finalize(self, _stop, self.proc, self.conn)
        atexit.register(self._finalizer)
        try:
            self.conn.send(spec)
            if progress:
                progress("starting the drafter's worker", 0, None)
            self.read_params = self._wait_ready(progress)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, progress) -> int:
        while True:
            msg = self._recv()
            if msg[0] == "progress" and progress:
                progress(f"worker: {msg[1]}", msg[2], msg[3])
            elif msg[0] == "ready":
                return msg[1]
            elif msg[0] == "error":
                raise SpecScopeError(f"the drafter's worker could not start: {msg[2]}")

    def _recv(self):
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            code = self.proc.poll()
            raise SpecScopeError("the drafter's worker stopped"
                                 + (f" (exit code {code})" if code is not None else "")) from None

    def send(self, msg) -> None:
        """A request that has no answer (settle, reset)."""
        try:
            self.conn.send(msg)
        except (OSError, ValueError):
            raise SpecScopeError("the drafter's worker stopped") from None

    def request(self, kind: str, *args):
        """Send a request and yield its answers until the last one ('proposal', 'done')."""
        self.seq += 1
        seq = self.seq
        self.send((kind, seq, *args))
        while True:
            msg = self._recv()
            if msg[0] == "error" and msg[1] == -1:  # a settle or reset that failed: not silent
                raise SpecScopeError(f"draft worker: {msg[2]}")
            if msg[1] != seq:  # the answer to a request given up (an interrupted step)
                continue
            if msg[0] == "error":
                raise SpecScopeError(f"draft worker: {msg[2]}")
            yield msg
            if msg[0] in ("proposal", "done"):
                return

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self._finalizer()


class WorkerDrafter(DrafterBase):
    """A model drafter ('draft', 'tree', 'pool' or 'jacobi') that drafts in the worker."""

    accepts_vocab_top_k = True

    def __init__(self, worker: DraftWorker, method: str, device: str | torch.device = "cpu") -> None:
        self.worker = worker
        self.name = method
        self.device = torch.device(device)
        self._read_params = worker.read_params
        self._kv_bytes = 0
        self._committed: list[int] | None = None  # the ids the last verdict left
        self._proposed = False  # this step's proposal came from the worker (k > 0)

    def read_params(self) -> int:
        return self._read_params

    def kv_bytes(self) -> int:
        return self._kv_bytes

    def configure(self, settings) -> None:
        self.settings = settings  # sent with each proposal; the worker checks it

    def reset(self) -> None:
        self.worker.send(("reset",))
        self._committed = None

    def prefill(self, ids: list[int]):
        for msg in self.worker.request("read", self.name, list(ids)):
            if msg[0] == "reading":
                yield msg[2], msg[3]

    def propose(self, ids: list[int], k: int, shaping, generator) -> Proposal:
        seed = None
        if self._committed != list(ids):  # a new run: the worker's stream starts again
            seed = worker_seed(generator.initial_seed() if generator is not None else 0, len(ids))
        t = time.perf_counter()
        # DuoDecoding: an overlapped chain whose budget the cost rule sizes is several sequences
        # where its first tokens are unsure (the worker's "draft-multi")
        method = "draft-multi" if (self.name == "draft" and self.settings.overlap
                                   and self.settings.auto_len) else self.name
        *_, msg = self.worker.request("propose", method, list(ids), k, shaping, self.settings,
                                      seed, self.settings.overlap)
        self._method = method
        wait = time.perf_counter() - t
        self._proposed = True
        got = msg[2]
        self._kv_bytes, self._read_params = got["kv_bytes"], got["read_params"]
        q = None if got["q"] is None else torch.from_numpy(got["q"]).to(self.device)
        overlap = None
        if got["overlap"] is not None:
            overlap = Overlap(**{**got["overlap"], "target_wait_s": wait})
        return Proposal(list(got["tokens"]), list(got["parents"]), list(got["q_token"]), q,
                        overlap=overlap)

    def feedback(self, ids: list[int], proposal: Proposal, n_accepted: int) -> None:
        self._committed = list(ids)
        self.worker.send(("settle", getattr(self, "_method", self.name), list(ids), n_accepted,
                          self._proposed))
        self._proposed = False
