"""The crawler against a real HTTP server on 127.0.0.1 serving the real index slice, with faults."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mars_rsl.crawl.mock import MockArchive, build_archive
from mars_rsl.crawl.run import CrawlOptions, crawl
from mars_rsl.pds import product_path, read_index

DATA = Path(__file__).with_name("data")
LBL = (DATA / "RDRCUMINDEX.LBL").read_text(encoding="latin-1")
TAB = (DATA / "RDRCUMINDEX.TAB").read_bytes()
ROWS = read_index(LBL, TAB)
RED = [r["PRODUCT_ID"] for r in ROWS if r["PRODUCT_ID"].endswith("_RED")]


def _files(**kw):  # type: ignore[no-untyped-def]
    return build_archive(LBL, TAB, sizes=(3000, 9000), **kw)


def _opts(url: str, out: Path, **kw) -> CrawlOptions:  # type: ignore[no-untyped-def]
    base = dict(archive=url, out=out, workers=4, retries=8, timeout=0.5, backoff=0.01)
    base.update(kw)
    return CrawlOptions(**base)


def _assert_identical(files: dict[str, bytes], out: Path, pids: list[str]) -> None:
    for pid in pids:
        obs = pid.rsplit("_", 1)[0]
        src = next(v for k, v in files.items() if k.endswith(f"/{pid}.JP2"))
        assert (out / obs / f"{pid}.JP2").read_bytes() == src, pid
    assert not list(out.rglob("*.part")), "partial files left behind"


def test_index_is_parsed_from_the_label_layout() -> None:
    assert len(ROWS) == 9
    r = ROWS[0]
    assert r["FILE_NAME_SPECIFICATION"] == "RDR/AEB/ORB_000000_000099/AEB_000001_0150/AEB_000001_0150_RED.JP2"
    assert r["ORBIT_NUMBER"] == 1 and r["OBSERVATION_ID"] == "AEB_000001_0150"
    assert r["MINIMUM_LATITUDE"] == pytest.approx(-52.8767) and r["MAXIMUM_LATITUDE"] == pytest.approx(-51.5351)
    assert [r["PRODUCT_ID"] for r in ROWS].count("AEB_000002_0000_COLOR") == 1


def test_probe_paths_follow_the_archive_layout() -> None:
    assert product_path("ESP_013951_1955", "RED") == "RDR/ESP/ORB_013900_013999/ESP_013951_1955/ESP_013951_1955_RED.JP2"
    assert (product_path("PSP_001234_0100", "COLOR")
            == "RDR/PSP/ORB_001200_001299/PSP_001234_0100/PSP_001234_0100_COLOR.JP2")


def test_selection_filters_and_faults_still_deliver_identical_files(tmp_path: Path) -> None:
    files = _files(drop=["AEB_000002_0050_RED"])
    # 30 % of product requests fail transiently (503, cut bodies, wrong Content-Length) plus
    # one scripted timeout: every product must still arrive byte-identical.
    # and, so that each kind surely happens whatever the thread timing, scripted ones
    base = "RDR/AEB/ORB_000000_000099/"
    script = {base + "AEB_000001_0150/AEB_000001_0150_RED.JP2": ["slow", "cut"],
              base + "AEB_000001_0100/AEB_000001_0100_RED.JP2": ["503", "503"],
              base + "AEB_000002_0150/AEB_000002_0150_RED.JP2": ["badlen"]}
    with MockArchive(files, fault_rate=0.3, slow_s=0.8, seed=3, script=script) as arch:
        rep = crawl(_opts(arch.url, tmp_path, targets=["0150", "0050", "0100", "0000"], labels=True), progress=False)
        kinds = {f for _, _, f in arch.gets(".JP2")}
    assert rep.failed == []
    assert rep.missing == ["AEB_000002_0050_RED"]
    assert sorted(rep.downloaded) == sorted(p for p in RED if p != "AEB_000002_0050_RED")
    assert {"503", "cut", "badlen", "slow"} <= kinds  # the faults really happened
    _assert_identical(files, tmp_path, rep.downloaded)
    assert (tmp_path / "AEB_000001_0150" / "AEB_000001_0150_RED.LBL").exists()


def test_filters_by_orbit_latitude_and_product(tmp_path: Path) -> None:
    files = _files()
    with MockArchive(files) as arch:
        rep = crawl(_opts(arch.url, tmp_path, orbits=(2, 2), kinds=["COLOR"]), progress=False)
        assert rep.downloaded == ["AEB_000002_0000_COLOR"]
        rep = crawl(_opts(arch.url, tmp_path / "b", lat=(-60.0, -52.5), kinds=["RED"]), progress=False)
    lat_ok = sorted(r["PRODUCT_ID"] for r in ROWS if r["PRODUCT_ID"].endswith("RED") and r["MINIMUM_LATITUDE"] <= -52.5)
    assert sorted(rep.downloaded) == lat_ok and 0 < len(lat_ok) < len(RED)


def test_cut_body_is_resumed_with_range(tmp_path: Path) -> None:
    files = _files()
    path = "RDR/AEB/ORB_000000_000099/AEB_000001_0100/AEB_000001_0100_RED.JP2"
    with MockArchive(files, script={path: ["cut"]}) as arch:
        rep = crawl(_opts(arch.url, tmp_path, targets=["AEB_000001_0100"]), progress=False)
        gets = arch.gets(path)
    assert rep.downloaded == ["AEB_000001_0100_RED"]
    assert len(gets) == 2 and gets[0][1] is None and gets[1][1] == len(files[path]) // 2
    _assert_identical(files, tmp_path, rep.downloaded)


def test_short_content_length_is_caught_by_the_index_size(tmp_path: Path) -> None:
    """Where the index gives a size, a body that matches a wrong Content-Length is refused."""
    import httpx

    from mars_rsl.crawl.fetch import RetryPolicy, Transient, fetch

    files = _files()
    path = "RDR/AEB/ORB_000000_000099/AEB_000001_0100/AEB_000001_0100_RED.JP2"
    dest = tmp_path / "x.JP2"
    with MockArchive(files, script={path: ["shortlen", "shortlen", "shortlen"]}) as arch, httpx.Client() as c:
        with pytest.raises(Transient):
            fetch(c, arch.url + path, dest, expected=len(files[path]), timeout=1, policy=RetryPolicy(1, 0.01))
        assert not dest.exists() and not list(tmp_path.iterdir())
        fetch(c, arch.url + path, dest, expected=len(files[path]), timeout=1, policy=RetryPolicy(2, 0.01))
    assert dest.read_bytes() == files[path]


def test_failure_after_retries_is_reported_and_leaves_no_final_file(tmp_path: Path) -> None:
    files = _files()
    path = "RDR/AEB/ORB_000000_000099/AEB_000001_0000/AEB_000001_0000_RED.JP2"
    with MockArchive(files, script={path: ["503"] * 10}) as arch:
        rep = crawl(_opts(arch.url, tmp_path, targets=["AEB_000001_0000", "AEB_000002_0000"], retries=2),
                    progress=False)
        n = len(arch.gets(path))
    assert rep.failed == ["AEB_000001_0000_RED"] and rep.downloaded == ["AEB_000002_0000_RED"] and rep.exit_code == 1
    assert n == 3  # one try + two retries
    assert not (tmp_path / "AEB_000001_0000" / "AEB_000001_0000_RED.JP2").exists()


def test_missing_is_not_retried(tmp_path: Path) -> None:
    files = _files(drop=["AEB_000001_0000_RED"])
    with MockArchive(files) as arch:
        rep = crawl(_opts(arch.url, tmp_path, targets=["AEB_000001_0000"]), progress=False)
        assert len(arch.gets("AEB_000001_0000_RED.JP2")) == 1
    assert rep.missing == ["AEB_000001_0000_RED"] and rep.exit_code == 0


def test_rerun_skips_complete_files(tmp_path: Path) -> None:
    files = _files()
    with MockArchive(files) as arch:
        crawl(_opts(arch.url, tmp_path), progress=False)
        n = len(arch.gets(".JP2"))
        rep = crawl(_opts(arch.url, tmp_path), progress=False)
        assert len(arch.gets(".JP2")) == n
    assert sorted(rep.skipped) == sorted(RED) and rep.downloaded == []


def test_probe_asks_the_server(tmp_path: Path) -> None:
    data = b"x" * 5000
    files = {product_path("ESP_011001_1700", "RED"): data, product_path("PSP_010999_1700", "RED"): data}
    with MockArchive(files) as arch:
        rep = crawl(_opts(arch.url, tmp_path, probe=True, orbits=(10998, 11002), targets=["1700", "1800"]),
                    progress=False)
    assert sorted(rep.downloaded) == ["ESP_011001_1700_RED", "PSP_010999_1700_RED"]
    assert (tmp_path / "ESP_011001_1700" / "ESP_011001_1700_RED.JP2").read_bytes() == data


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = dict(os.environ, MARS_CORE_PLUGINS="rsl")
    return subprocess.run([sys.executable, "-m", "mars_core.cli", "rsl", "crawl", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_cli_unreachable_archive_exits_2_quickly(tmp_path: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    t = time.monotonic()
    r = _cli("--archive", f"http://127.0.0.1:{port}/", "--out", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    assert time.monotonic() - t < 15
    assert r.stderr.strip().count("\n") == 0 and "unreachable" in r.stderr


def test_cli_bad_arguments_exit_2(tmp_path: Path) -> None:
    r = _cli("--archive", "http://127.0.0.1:9/", "--out", str(tmp_path), "--orbits", "9-3")
    assert r.returncode == 2 and r.stderr.startswith("error:")


def test_cli_kill_and_rerun_fetches_only_the_rest(tmp_path: Path) -> None:
    """A crawl killed half-way (SIGKILL) and rerun: complete files are never fetched again,
    nothing corrupt is under a final name, and the JSON report lists what the rerun did."""
    files = _files()
    out = tmp_path / "dl"
    with MockArchive(files, latency=0.15) as arch:
        p = subprocess.Popen([sys.executable, "-m", "mars_core.cli", "rsl", "crawl", "--archive", arch.url,
                              "--out", str(out), "--workers", "1", "--no-progress"],
                             env=dict(os.environ, MARS_CORE_PLUGINS="rsl"), stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(out.rglob("*.JP2"))) < 3:
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        done_before = {f.name[:-4] for f in out.rglob("*.JP2")}
        assert 3 <= len(done_before) < len(RED)
        for f in out.rglob("*.JP2"):  # nothing corrupt under a final name
            src = next(v for k, v in files.items() if k.endswith("/" + f.name))
            assert f.read_bytes() == src
        n_before = len(arch.requests)
        r = _cli("--archive", arch.url, "--out", str(out), "--json", str(tmp_path / "r.json"), "--no-progress")
        rerun = [p for m, p, _, _ in arch.requests[n_before:] if m == "GET" and p.endswith(".JP2")]
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert set(rep["skipped"]) == done_before
    assert set(rep["downloaded"]) == set(RED) - done_before
    assert {Path(p).name[:-4] for p in rerun} == set(RED) - done_before
    _assert_identical(files, out, RED)
