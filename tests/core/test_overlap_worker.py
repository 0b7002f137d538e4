"""The drafter's worker process (core/workers.py, drafters/worker.py): it starts once, is reused,
and is gone after a stop, an error, Ctrl-C or its parent's death; its failures are one line."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from specscope.core.drafters.worker import DraftWorker
from specscope.core.errors import SpecScopeError
from specscope.core.workers import WorkerSpec
from tests.core.helpers import run, tiny_decoder
from tests.core.overlap_helpers import overlap_factories

SPEC = WorkerSpec("tiny", 1024, tiny=dict(role="draft", seed=0))


def gone(pid: int, wait_s: float = 60.0) -> bool:
    """Whether the process ended (or is a zombie nobody reaped yet), waiting up to wait_s: a
    liveness bound, not a speed check."""
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_stop_ends_the_worker_and_a_stopped_run_leaves_it_usable():
    worker = DraftWorker(SPEC)
    decoder = tiny_decoder(extra=overlap_factories(worker, 1024, {}))
    _, base = run(decoder, [5, 17, 230], method="ar", max_new_tokens=20)
    from specscope.core.controls import Controls

    events = decoder.run([5, 17, 230], Controls(method="draft", draft_len=3, max_new_tokens=20,
                                                overlap=True))
    for _ in range(4):  # a UI's stop: the run is closed between events
        next(events)
    events.close()
    _, again = run(decoder, [5, 17, 230], method="draft", draft_len=3, max_new_tokens=20,
                   overlap=True)  # the same worker answers the next run
    assert again.token_ids == base.token_ids and worker.alive()
    pid = worker.pid
    worker.close()
    assert gone(pid) and not worker.alive()
    with pytest.raises(SpecScopeError, match="worker stopped"):
        run(decoder, [5, 17, 230], method="draft", draft_len=3, max_new_tokens=5, overlap=True)


def test_a_failure_in_the_worker_is_one_line_and_the_worker_goes_on():
    worker = DraftWorker(SPEC)
    try:
        with pytest.raises(SpecScopeError, match="draft worker: RuntimeError: boom"):
            list(worker.request("fail", "boom"))
        decoder = tiny_decoder(extra=overlap_factories(worker, 1024, {}))
        _, base = run(decoder, [9, 9, 40], method="ar", max_new_tokens=12)
        _, spec = run(decoder, [9, 9, 40], method="tree", draft_len=3, max_new_tokens=12)
        assert spec.token_ids == base.token_ids
    finally:
        worker.close()


def test_a_failure_in_a_request_with_no_answer_is_raised_at_the_next_one():
    # settle and reset are not answered; a failure there (a drafter's state gone wrong) used to
    # be sent with no request number and dropped by the parent, so the run went on silently
    worker = DraftWorker(SPEC)
    try:
        worker.send(("settle", "no-such-method", [5, 17], 0, True))
        with pytest.raises(SpecScopeError, match="draft worker: settle failed: KeyError"):
            list(worker.request("read", "draft", [5, 17, 230]))
        assert list(worker.request("read", "draft", [5, 17, 230]))[-1][0] == "done"  # goes on
    finally:
        worker.close()


def test_a_worker_that_cannot_load_says_why_and_is_gone():
    with pytest.raises(SpecScopeError, match="could not start"):
        DraftWorker(WorkerSpec("/nonexistent/model-dir", 1024))


def test_a_worker_that_died_is_one_line():
    worker = DraftWorker(SPEC)
    decoder = tiny_decoder(extra=overlap_factories(worker, 1024, {}))
    os.kill(worker.pid, signal.SIGKILL)
    assert gone(worker.pid)
    with pytest.raises(SpecScopeError, match="worker stopped"):
        run(decoder, [5, 17, 230], method="draft", draft_len=3, max_new_tokens=5, overlap=True)
    worker.close()


PARENT = textwrap.dedent("""
    import sys, time
    from specscope.core.drafters.worker import DraftWorker
    from specscope.core.workers import WorkerSpec
    worker = DraftWorker(WorkerSpec("tiny", 1024, tiny=dict(role="draft", seed=0)))
    print(worker.pid, flush=True)
    try:
        while True:
            time.sleep(0.1)
    except KeyboardInterrupt:
        sys.exit(130)
""")


def parent_with_worker() -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    line = proc.stdout.readline()
    assert line.strip().isdigit(), line
    worker_pid = int(line)
    assert not gone(worker_pid, 0.0)
    return proc, worker_pid


@pytest.mark.parametrize("how", ["ctrl-c", "killed"])
def test_the_worker_does_not_outlive_its_parent(how):
    """Ctrl-C reaches the whole process group (as a terminal sends it): the worker ignores it,
    the parent ends, the worker follows. A parent killed outright (SIGKILL: no atexit, no
    finalizer) leaves a worker that notices and ends."""
    proc, worker_pid = parent_with_worker()
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 130
    else:
        proc.kill()
        proc.wait(60)
    assert gone(worker_pid)
