"""One file over HTTP, resumably: ``.part`` file, Range requests, size checks, retries.

Why each rule:

* A file appears under its final name only when complete (``os.replace`` of the ``.part``
  file once its size equals the announced total and, where given, the index's size), so a
  reader or a rerun never mistakes a partial download for a product.
* A cut connection keeps the bytes received: the next attempt asks ``Range: bytes=N-``; a
  ``206`` whose ``Content-Range`` starts elsewhere, or a ``200`` (a server ignoring Range),
  restarts the file from zero rather than splicing wrong bytes.
* 5xx, 429, timeouts and broken connections are transient: retried with exponential backoff
  and full jitter (tenacity), so many workers do not hammer a struggling server in step.
  A 404 is an answer, not a failure: recorded as missing, never retried. Other 4xx fail at once.
* A per-host semaphore bounds concurrent requests to one server whatever the worker count.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

CHUNK = 64 * 1024


class Transient(Exception):
    """Worth retrying: 5xx, timeout, cut connection, size mismatch."""


class Missing(Exception):
    """The server says the file does not exist (404/410)."""


class Fatal(Exception):
    """Not worth retrying (a 4xx other than 404/410/429)."""


@dataclass
class RetryPolicy:
    retries: int = 5
    backoff: float = 0.5  # first wait, s; doubles per attempt
    backoff_max: float = 30.0

    def retrying(self) -> Retrying:
        return Retrying(stop=stop_after_attempt(self.retries + 1),
                        wait=wait_exponential_jitter(initial=self.backoff, max=self.backoff_max, jitter=self.backoff),
                        retry=retry_if_exception_type(Transient), reraise=True)


class HostLimiter:
    """At most ``limit`` requests in flight per host."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self._sems: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str) -> threading.BoundedSemaphore:
        host = urlsplit(url).netloc
        with self._lock:
            if host not in self._sems:
                self._sems[host] = threading.BoundedSemaphore(self.limit)
            return self._sems[host]


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _attempt(client: httpx.Client, url: str, dest: Path, expected: int | None, timeout: float,
             on_bytes: Callable[[int], None]) -> int:
    part = part_path(dest)
    offset = part.stat().st_size if part.exists() else 0
    if expected is not None and offset > expected:
        part.unlink()
        offset = 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with client.stream("GET", url, headers=headers, timeout=timeout) as r:
            if r.status_code in (404, 410):
                raise Missing(f"HTTP {r.status_code}")
            if r.status_code == 416:  # our .part does not fit the file any more: start over
                part.unlink(missing_ok=True)
                raise Transient("HTTP 416 for a resume; restarting the file")
            if r.status_code >= 500 or r.status_code == 429:
                raise Transient(f"HTTP {r.status_code}")
            if r.status_code not in (200, 206):
                raise Fatal(f"HTTP {r.status_code}")
            total: int | None = None
            if r.status_code == 206:
                m = _CONTENT_RANGE.match(r.headers.get("content-range", ""))
                if not m or int(m[1]) != offset:
                    part.unlink(missing_ok=True)
                    raise Transient(f"unexpected Content-Range {r.headers.get('content-range')!r}; restarting")
                total = int(m[3]) if m[3] != "*" else None
                mode = "ab"
            else:
                offset, mode = 0, "wb"
                if "content-length" in r.headers:
                    total = int(r.headers["content-length"])
            with open(part, mode) as f:
                for chunk in r.iter_raw():  # as received, so a cut keeps what arrived
                    f.write(chunk)
                    on_bytes(len(chunk))
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        raise Transient(f"{type(exc).__name__}: {exc}") from None
    size = part.stat().st_size
    if total is not None and size != total:
        if size > total:
            part.unlink()
        raise Transient(f"received {size} bytes of {total}")
    if expected is not None and size != expected:
        part.unlink()
        raise Transient(f"received {size} bytes, the index says {expected}")
    os.replace(part, dest)
    return size


def fetch(client: httpx.Client, url: str, dest: Path, *, expected: int | None = None, timeout: float = 30.0,
          policy: RetryPolicy | None = None, limiter: HostLimiter | None = None,
          on_bytes: Callable[[int], None] = lambda n: None) -> int:
    """Download ``url`` to ``dest`` (complete or not at all); return its size.

    Raises ``Missing`` (404), ``Fatal`` (other 4xx) or ``Transient`` after the last retry.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    policy = policy or RetryPolicy()
    limiter = limiter or HostLimiter(8)
    for attempt in policy.retrying():
        with attempt, limiter(url):
            return _attempt(client, url, dest, expected, timeout, on_bytes)
    raise AssertionError("unreachable")  # pragma: no cover


def head(client: httpx.Client, url: str, *, timeout: float, policy: RetryPolicy, limiter: HostLimiter) -> int | None:
    """Does ``url`` exist? Its size (None when not announced); ``Missing`` when it does not."""
    def once() -> int | None:
        try:
            with limiter(url):
                r = client.head(url, timeout=timeout)
        except httpx.ConnectError:
            raise
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise Transient(str(exc)) from None
        if r.status_code in (404, 410):
            raise Missing(f"HTTP {r.status_code}")
        if r.status_code >= 500 or r.status_code == 429:
            raise Transient(f"HTTP {r.status_code}")
        if r.status_code != 200:
            raise Fatal(f"HTTP {r.status_code}")
        cl = r.headers.get("content-length")
        return int(cl) if cl else None

    for attempt in policy.retrying():
        with attempt:
            return once()
    raise AssertionError("unreachable")  # pragma: no cover
