"""A small JSON-over-HTTP client for serving engines: one persistent connection, timeouts,
retries with backoff for idempotent requests, one-line errors, an API key that is never shown.

The key comes from `api_key` (the `--api-key` option) or $SPECSCOPE_API_KEY and is sent as
`Authorization: Bearer ...`; every error message passes through `redact`, and `describe()` (what
results record about the server) holds the URL without credentials.
"""
from __future__ import annotations

import http.client
import json
import os
import time
import urllib.parse

from specscope.core.errors import SpecScopeError

RETRIES = 3  # further tries of an idempotent request after a connection failure or a 5xx
BACKOFF_S = 0.25  # doubled after each failed try


class RemoteError(SpecScopeError):
    """A server that answered with an error, or did not answer."""


class HttpClient:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SpecScopeError(f"not a server URL: '{redact_url(url)}' (use http://HOST:PORT)")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self.url = f"{parts.scheme}://{self.host}:{self.port}{self.base}"
        self.api_key = api_key or os.environ.get("SPECSCOPE_API_KEY") or None
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self.requests = 0  # answered requests
        self.wall_s = 0.0  # their round trips, in seconds

    def redact(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: dict | None = None, *,
                idempotent: bool = True, retries: int = RETRIES, as_text: bool = False) -> dict | str:
        """The decoded JSON answer (`as_text`: its text). Retries (with backoff) a request that
        failed to connect, timed out or got a 5xx, when `idempotent`; raises RemoteError with one line otherwise."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        delay, last = BACKOFF_S, ""
        for attempt in range(1 + (retries if idempotent else 0)):
            if attempt:
                time.sleep(delay)
                delay *= 2
            t = time.perf_counter()
            try:
                conn = self._connection()
                conn.request(method, self.base + path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as e:
                self.close()
                last = f"cannot reach {self.url} ({type(e).__name__}: {e})"
                continue
            self.wall_s += time.perf_counter() - t
            self.requests += 1
            if resp.status >= 500:
                last = f"{self.url}{path} answered {resp.status}: {_message(raw)}"
                continue
            if resp.status in (401, 403):
                hint = ("the API key given is not accepted" if self.api_key else
                        "it needs an API key: --api-key or $SPECSCOPE_API_KEY")
                raise RemoteError(self.redact(f"{self.url}{path} answered {resp.status} "
                                              f"({_message(raw)}): {hint}"))
            if resp.status >= 400:
                raise RemoteError(self.redact(f"{self.url}{path} answered {resp.status}: {_message(raw)}"))
            if as_text:
                return raw.decode(errors="replace")
            try:
                return json.loads(raw)
            except ValueError:
                raise RemoteError(f"{self.url}{path} did not answer JSON: {raw[:120]!r}") from None
        raise RemoteError(self.redact(last))

    def get(self, path: str) -> dict:
        return self.request("GET", path)

    def text(self, path: str) -> str:
        """A GET answer that is not JSON (a Prometheus /metrics page)."""
        return self.request("GET", path, as_text=True)

    def post(self, path: str, body: dict, idempotent: bool = True) -> dict:
        return self.request("POST", path, body, idempotent=idempotent)


def _message(raw: bytes) -> str:
    """An error answer's message: llama.cpp {"error": {"message"}}, OpenAI-style, or raw text."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw[:200].decode(errors="replace").strip() or "(empty)"
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return str(err.get("message") or err.get("detail") or err)[:300]
    return str(err)[:300]


def is_url(source: str | None) -> bool:
    """A served target's address (http:// or https://), rather than a model source."""
    return bool(source) and source.startswith(("http://", "https://"))


def redact_url(url: str) -> str:
    """A URL without user:password (results and messages record this form only)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
