"""`cnnexp ui` serves the MLflow UI for the same store `cnnexp train` writes to."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read()


@pytest.mark.slow
def test_ui_serves_the_runs_train_wrote(cli, workdir: Path) -> None:
    out = cli("train", "train.epochs=1", "--json").json()
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    proc = subprocess.Popen([sys.executable, "-m", "cnnexp.cli", "ui", "--port", str(port)],
                            cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                status, page = _get(base + "/")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                assert time.time() < deadline, "MLflow UI did not start"
                time.sleep(0.5)
        assert status == 200 and b"<html" in page.lower()
        req = urllib.request.Request(
            base + "/ajax-api/2.0/mlflow/runs/get?run_id=" + out["run_id"])
        with urllib.request.urlopen(req, timeout=10) as resp:
            run = json.loads(resp.read())["run"]
        assert run["info"]["run_id"] == out["run_id"]
        assert run["info"]["experiment_id"] == out["experiment_id"]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc; zombies count as gone)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_sigterm_stops_the_server_and_all_its_workers(workdir: Path) -> None:
    """SIGTERM to `cnnexp ui` alone (as a service manager or `kill PID` sends it) stops
    `mlflow ui` and its workers and frees the port."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cnnexp.cli", "ui", "--port", str(port)],
                            cwd=workdir, env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                _get(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                assert time.time() < deadline, "MLflow UI did not start"
                time.sleep(0.5)
        server = _children(proc.pid)
        assert len(server) >= 2  # mlflow and at least one worker
        start = time.monotonic()
        proc.send_signal(15)
        proc.wait(timeout=30)
        while any(_alive(p) for p in server) and time.monotonic() - start < 20:
            time.sleep(0.2)
        assert not [p for p in server if _alive(p)], "server processes left running"
        with socket.socket() as s:  # the port is free again
            s.bind(("127.0.0.1", port))
    finally:
        for pid in _children(proc.pid) | {proc.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def test_busy_port_is_one_line_before_any_server(cli, workdir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = time.monotonic()
        res = cli("ui", "--port", str(port))
        assert time.monotonic() - start < 10
    assert res.exit_code == 2, res.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in res.stderr
    assert "(try --port " in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_ui_refuses_a_store_it_cannot_open(cli, workdir: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus://x")
    res = cli("ui", "--port", str(_free_port()))
    assert res.exit_code == 2 and "unknown scheme 'bogus'" in res.stderr


def test_a_wildcard_host_is_named_as_exposed_and_links_stay_local() -> None:
    from cnnexp.tracking.ui import exposure

    host, warning = exposure("0.0.0.0")
    assert host == "127.0.0.1" and "every network interface" in warning
    assert exposure("::")[0] == "[::1]" and exposure("::")[1]
    assert exposure("127.0.0.1") == ("127.0.0.1", "")


def test_an_in_memory_store_is_refused_before_any_work(cli, workdir: Path,
                                                       monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite://")
    res = cli("train", "train.epochs=1", "--json")
    assert res.exit_code == 2 and "in-memory SQLite" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
