"""``crawl``: select products of the HiRISE archive and download them in parallel.

Discovery reads ``INDEX/RDRCUMINDEX.LBL`` (the column layout) and ``INDEX/RDRCUMINDEX.TAB``
(the rows) from the volume root, or, with ``probe``, forms product names from orbits and
target codes and asks the server (HEAD) which exist. Downloads run on ``workers`` threads
sharing one HTTP client, bounded per host (``per_host``), and every state change goes to
the frontier (``frontier.py``) so a killed crawl resumes where it stopped.

An archive that cannot be reached (connection refused, DNS failure, connect timeout) while
reading the index or probing is a user error (``MarsError``, exit 2, within the connect
timeout), not a failure of the products: nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mars_core.errors import MarsError
from mars_rsl.crawl.fetch import Fatal, HostLimiter, Missing, RetryPolicy, Transient, fetch, head
from mars_rsl.crawl.frontier import Frontier
from mars_rsl.pds import Product, probe_candidates, read_index, select_products

INDEX_LBL = "INDEX/RDRCUMINDEX.LBL"
INDEX_TAB = "INDEX/RDRCUMINDEX.TAB"


@dataclass
class CrawlReport:
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    bytes: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"downloaded": sorted(self.downloaded), "skipped": sorted(self.skipped),
                "missing": sorted(self.missing), "failed": sorted(self.failed), "errors": self.errors,
                "bytes": self.bytes}

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


@dataclass
class CrawlOptions:
    archive: str
    out: Path
    orbits: tuple[int, int] | None = None
    targets: list[str] = field(default_factory=list)
    lat: tuple[float, float] | None = None
    kinds: list[str] = field(default_factory=lambda: ["RED"])
    labels: bool = False
    workers: int = 4
    per_host: int = 8
    retries: int = 5
    timeout: float = 30.0
    backoff: float = 0.5
    probe: bool = False


def _url(root: str, rel: str) -> str:
    return root.rstrip("/") + "/" + rel.lstrip("/")


def _unreachable(archive: str, exc: Exception) -> MarsError:
    return MarsError(f"archive {archive} is unreachable ({type(exc).__name__}: {exc})")


def _get_small(client: httpx.Client, url: str, opts: CrawlOptions, policy: RetryPolicy) -> bytes:
    """GET an index file, retrying transient errors; unreachable or 404 → MarsError."""
    def once() -> bytes:
        try:
            r = client.get(url, timeout=opts.timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _unreachable(opts.archive, exc) from None
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise Transient(str(exc)) from None
        if r.status_code >= 500 or r.status_code == 429:
            raise Transient(f"HTTP {r.status_code}")
        if r.status_code != 200:
            raise MarsError(f"{url}: HTTP {r.status_code} (is --archive the volume root holding INDEX/ and RDR/?)")
        return r.content

    try:
        for attempt in policy.retrying():
            with attempt:
                return once()
    except Transient as exc:
        raise MarsError(f"{url}: still failing after {opts.retries} retries ({exc})") from None
    raise AssertionError("unreachable")  # pragma: no cover


def discover(client: httpx.Client, opts: CrawlOptions, policy: RetryPolicy, limiter: HostLimiter) -> list[Product]:
    """The products to fetch: from the cumulative index, or probed."""
    if opts.probe:
        if not opts.orbits or not opts.targets:
            raise MarsError("--probe needs --orbits A-B and --targets (4-digit target codes)")
        bad = [t for t in opts.targets if len(t) != 4]
        if bad:
            raise MarsError(f"--probe takes 4-digit target codes, not {', '.join(bad)}")
        cands = probe_candidates(opts.orbits, opts.targets, opts.kinds)
        found: list[Product] = []
        lock = threading.Lock()

        def probe(p: Product) -> None:
            try:
                head(client, _url(opts.archive, p.path), timeout=opts.timeout, policy=policy, limiter=limiter)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise _unreachable(opts.archive, exc) from None
            except (Missing, Fatal, Transient):
                return  # a guessed name the archive does not hold (or will not say): not selected
            with lock:
                found.append(p)  # a HEAD's Content-Length is a hint only: the GET's is checked

        with ThreadPoolExecutor(max(1, opts.workers)) as pool:
            list(pool.map(probe, cands))
        return sorted(found, key=lambda p: p.product_id)
    lbl = _get_small(client, _url(opts.archive, INDEX_LBL), opts, policy)
    tab = _get_small(client, _url(opts.archive, INDEX_TAB), opts, policy)
    rows = read_index(lbl.decode("latin-1"), tab)
    return select_products(rows, opts.orbits, opts.targets, opts.lat, opts.kinds)


def _complete(dest: Path, rec: dict | None, expected: int | None) -> bool:
    if not dest.exists():
        return False
    size = dest.stat().st_size
    if rec and rec.get("state") == "done" and rec.get("size") not in (None, size):
        return False  # changed since we wrote it: fetch again (never trust a final name blindly)
    return expected is None or size == expected


def crawl(opts: CrawlOptions, progress: bool = True) -> CrawlReport:
    """Run a crawl; returns the report (the caller writes JSON and picks the exit code)."""
    if opts.workers < 1 or opts.per_host < 1:
        raise MarsError("--workers and --per-host must be at least 1")
    if opts.retries < 0 or opts.timeout <= 0:
        raise MarsError("--retries must be >= 0 and --timeout > 0")
    if not opts.archive.startswith(("http://", "https://")):
        raise MarsError(f"--archive must be an http(s) URL, got '{opts.archive}'")
    policy = RetryPolicy(opts.retries, opts.backoff, max(opts.backoff, 30.0))
    limiter = HostLimiter(opts.per_host)
    # The connect timeout bounds how long an unreachable archive takes to be reported.
    timeout = httpx.Timeout(opts.timeout, connect=min(opts.timeout, 5.0))
    limits = httpx.Limits(max_connections=max(opts.workers, opts.per_host) + 2,
                          max_keepalive_connections=max(opts.workers, opts.per_host))
    report = CrawlReport()
    with httpx.Client(timeout=timeout, limits=limits, follow_redirects=True) as client:
        products = discover(client, opts, policy, limiter)
        opts.out.mkdir(parents=True, exist_ok=True)
        frontier = Frontier(opts.out, opts.archive)
        lock = threading.Lock()
        bar = _Bar(len(products), progress)

        def one(p: Product) -> None:
            pid = p.product_id
            dest = opts.out / p.obs / f"{pid}.JP2"
            lbl = dest.with_suffix(".LBL")
            rec = frontier.get(pid)
            want_label = opts.labels
            if _complete(dest, rec, p.size) and (not want_label or lbl.exists()):
                with lock:
                    report.skipped.append(pid)
                bar.done()
                return
            try:
                if want_label and not lbl.exists():
                    fetch(client, _url(opts.archive, p.label_path), lbl, timeout=opts.timeout, policy=policy,
                          limiter=limiter, on_bytes=bar.add_bytes)
                if _complete(dest, rec, p.size):
                    size, state = dest.stat().st_size, "skipped"
                else:
                    size = fetch(client, _url(opts.archive, p.path), dest, expected=p.size, timeout=opts.timeout,
                                 policy=policy, limiter=limiter, on_bytes=bar.add_bytes)
                    state = "downloaded"
                frontier.set(pid, state="done", size=size, path=p.path)
                with lock:
                    (report.downloaded if state == "downloaded" else report.skipped).append(pid)
                    report.bytes += size if state == "downloaded" else 0
            except Missing as exc:
                frontier.set(pid, state="missing", path=p.path)
                with lock:
                    report.missing.append(pid)
                    report.errors[pid] = str(exc)
            except (Transient, Fatal, OSError) as exc:
                frontier.set(pid, state="failed", path=p.path, error=str(exc))
                with lock:
                    report.failed.append(pid)
                    report.errors[pid] = str(exc)
            finally:
                bar.done()

        with bar, ThreadPoolExecutor(opts.workers) as pool:
            list(pool.map(one, products))
    return report


def write_report(report: CrawlReport, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report.as_dict(), indent=1))
    os.replace(tmp, path)


class _Bar:
    """A rich progress bar over products (with bytes), or nothing when switched off."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self._bytes = 0
        self._lock = threading.Lock()

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("crawl"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[mb]:.1f} MB"), TimeRemainingColumn(),
                                     console=Console(stderr=True), transient=False)
            self.progress.__enter__()
            self.task = self.progress.add_task("crawl", total=self.total, mb=0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.__exit__(*exc)

    def add_bytes(self, n: int) -> None:
        if self.enabled:
            with self._lock:
                self._bytes += n
                self.progress.update(self.task, mb=self._bytes / 1e6)

    def done(self) -> None:
        if self.enabled:
            self.progress.advance(self.task)
