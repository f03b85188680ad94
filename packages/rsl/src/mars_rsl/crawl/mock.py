"""A mock HiRISE archive on 127.0.0.1 with injectable faults (tests and the crawl benchmark).

Why it is in the package: the crawler's tests and ``benchmarks/rsl_crawl.py`` must exercise
the same server. It serves a dict of ``path -> bytes`` with the real volume layout (built by
:func:`build_archive` from the real cumulative index slice), honours ``Range: bytes=N-[M]``,
adds a fixed latency per request (and optionally throttles bodies to ``rate`` bytes/s),
and injects faults: ``503`` (a 503 answer), ``slow`` (the
answer waits ``slow_s``, longer than the client's timeout), ``cut`` (full Content-Length
announced, half the body sent, connection closed), ``badlen`` (Content-Length larger than
the body, connection closed after the body) and ``shortlen`` (Content-Length and body both
shorter than the file: only a size from the index can tell). Faults come from a per-path
script (consumed in order) or at random at ``fault_rate`` (seeded) among ``fault_kinds``.
Every request is logged (method, path, first byte asked) so tests can say what was fetched.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mars_rsl.pds import parse_label, read_index


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        arch = self.server.archive
        path = self.path.split("?")[0].lstrip("/")
        rng = self.headers.get("Range")
        start = 0
        end: int | None = None
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start, end = int(a or 0), (int(b) if b else None)
        fault = arch.next_fault(path)
        arch.log_request("HEAD" if head else "GET", path, start if rng else None, fault)
        if arch.latency:
            time.sleep(arch.latency)
        try:
            if fault == "slow":
                time.sleep(arch.slow_s)
            if fault == "503":
                self._plain(503, b"busy")
                return
            body = arch.files.get(path)
            if body is None:
                self._plain(404, b"not found")
                return
            total = len(body)
            if fault == "shortlen":
                body = body[: max(0, total - 7)]
                total = len(body)
            if rng and start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            last = total - 1 if end is None else min(end, total - 1)
            chunk = body[start:last + 1]
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{last}/{total}")
            announced = len(chunk) + (100 if fault == "badlen" else 0)
            self.send_header("Content-Length", str(announced))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if head:
                return
            if fault == "cut":
                self.wfile.write(chunk[: len(chunk) // 2])
                self._drop()
                return
            if arch.rate:  # throttled body: a kill or a timeout can land mid-file
                step = 16 * 1024
                for i in range(0, len(chunk), step):
                    self.wfile.write(chunk[i:i + step])
                    time.sleep(step / arch.rate)
            else:
                self.wfile.write(chunk)
            if fault == "badlen":
                self._drop()
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _plain(self, code: int, text: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(text)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    archive: MockArchive


class MockArchive:
    """``with MockArchive(files, ...) as arch: arch.url`` is the volume root URL."""

    def __init__(self, files: dict[str, bytes], latency: float = 0.0, fault_rate: float = 0.0,
                 fault_kinds: Iterable[str] = ("503", "cut", "badlen"), slow_s: float = 0.5, seed: int = 0,
                 script: dict[str, list[str]] | None = None, fault_paths: str = "RDR/",
                 rate: float | None = None) -> None:
        self.files = dict(files)
        self.rate = rate  # bytes/s per response, None = unthrottled
        self.latency = latency
        self.fault_rate = fault_rate
        self.fault_kinds = list(fault_kinds)
        self.slow_s = slow_s
        self.fault_paths = fault_paths
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, int | None, str | None]] = []

    def next_fault(self, path: str) -> str | None:
        with self.lock:
            if self.script.get(path):
                return self.script[path].pop(0)
            if self.fault_rate and path.startswith(self.fault_paths) and self.rng.random() < self.fault_rate:
                return self.rng.choice(self.fault_kinds)
            return None

    def log_request(self, method: str, path: str, start: int | None, fault: str | None) -> None:
        with self.lock:
            self.requests.append((method, path, start, fault))

    def gets(self, path_suffix: str = "") -> list[tuple[str, int | None, str | None]]:
        """GET requests (path, first byte, fault) whose path ends with ``path_suffix``."""
        with self.lock:
            return [(p, s, f) for m, p, s, f in self.requests if m == "GET" and p.endswith(path_suffix)]

    def __enter__(self) -> MockArchive:
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.archive = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def product_label(obs: str, kind: str, size: int) -> str:
    """A small detached PDS3 label for a mock product (the keys a real RDR label has for scaling)."""
    return (f'PDS_VERSION_ID = PDS3\r\nPRODUCT_ID = "{obs}_{kind}"\r\nOBJECT = COMPRESSED_FILE\r\n'
            f'  FILE_NAME = "{obs}_{kind}.JP2"\r\n  ENCODING_TYPE = "JP2"\r\nEND_OBJECT = COMPRESSED_FILE\r\n'
            'OBJECT = IMAGE\r\n  SAMPLE_BITS = 16\r\n  SCALING_FACTOR = 2.0E-05\r\n  OFFSET = 0.0\r\n'
            '  CORE_NULL = 0\r\n  CORE_LOW_REPR_SATURATION = 1\r\n  CORE_LOW_INSTR_SATURATION = 2\r\n'
            '  CORE_HIGH_REPR_SATURATION = 1023\r\n  CORE_HIGH_INSTR_SATURATION = 1022\r\n'
            'END_OBJECT = IMAGE\r\nEND\r\n')


def build_archive(index_lbl: str, index_tab: bytes, sizes: tuple[int, int] = (20_000, 60_000), seed: int = 0,
                  drop: Iterable[str] = ()) -> dict[str, bytes]:
    """Volume files for the rows of a real index: the index itself, a random-bytes product and
    its label for each row, except the product ids in ``drop`` (404 on the server)."""
    parse_label(index_lbl)  # fail early on a broken fixture
    rng = random.Random(seed)
    files: dict[str, bytes] = {"INDEX/RDRCUMINDEX.LBL": index_lbl.encode("latin-1"),
                               "INDEX/RDRCUMINDEX.TAB": index_tab}
    dropped = set(drop)
    for row in read_index(index_lbl, index_tab):
        path, pid, obs = row["FILE_NAME_SPECIFICATION"], row["PRODUCT_ID"], row["OBSERVATION_ID"]
        if pid in dropped:
            continue
        n = rng.randint(*sizes)
        files[path] = rng.randbytes(n)
        files[path.rsplit(".", 1)[0] + ".LBL"] = product_label(obs, pid.rsplit("_", 1)[-1], n).encode()
    return files
