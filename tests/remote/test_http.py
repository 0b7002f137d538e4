"""The HTTP client's hygiene against a real local HTTP server (stdlib) that fails on purpose:
retries with backoff for idempotent requests only, timeouts, one-line errors, a hidden key."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from specscope.remote import http as H
from specscope.remote.http import HttpClient, RemoteError


class Flaky(BaseHTTPRequestHandler):
    fails = 0  # answer 503 this many times, then 200
    delay = 0.0
    seen: list = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((time.monotonic(), self.headers.get("Authorization")))
        time.sleep(type(self).delay)
        ok = len(type(self).seen) > type(self).fails
        body = json.dumps({"ok": True} if ok else {"error": {"message": "loading model"}}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Flaky.fails, Flaky.delay, Flaky.seen = 0, 0.0, []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_idempotent_requests_are_retried_with_backoff(flaky, monkeypatch):
    monkeypatch.setattr(H, "BACKOFF_S", 0.05)
    Flaky.fails = 2
    assert HttpClient(flaky).post("/score", {"x": 1}) == {"ok": True}
    times = [t for t, _ in Flaky.seen]
    assert len(times) == 3
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # doubled


def test_other_requests_and_lasting_failures_are_one_line(flaky, monkeypatch):
    monkeypatch.setattr(H, "BACKOFF_S", 0.01)
    Flaky.fails = 1
    with pytest.raises(RemoteError, match="503: loading model"):
        HttpClient(flaky).post("/generate", {}, idempotent=False)  # not retried
    assert len(Flaky.seen) == 1
    Flaky.fails, Flaky.seen = 99, []
    with pytest.raises(RemoteError, match="503") as e:
        HttpClient(flaky, api_key="sk-hidden-9").post("/score", {})
    assert len(Flaky.seen) == 1 + H.RETRIES and "\n" not in str(e.value)
    assert Flaky.seen[0][1] == "Bearer sk-hidden-9" and "sk-hidden-9" not in str(e.value)


def test_a_slow_server_times_out(flaky, monkeypatch):
    monkeypatch.setattr(H, "BACKOFF_S", 0.01)
    Flaky.delay = 0.5
    with pytest.raises(RemoteError, match="cannot reach .*timed out"):
        HttpClient(flaky, timeout=0.1).post("/score", {})
    assert len(Flaky.seen) == 1 + H.RETRIES
